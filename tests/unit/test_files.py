"""Atomic files get the usual permissions."""

from digit_recognizer.files import _UMASK, atomic_path


def test_atomic_files_get_the_usual_permissions(tmp_path):
    """mkstemp's temporary file is owner-only; the renamed result must not stay so."""
    with atomic_path(tmp_path / "submission.csv") as tmp:
        tmp.write_text("ImageId,Label\n")
    assert (tmp_path / "submission.csv").stat().st_mode & 0o777 == 0o666 & ~_UMASK
