"""Run folders: claimed atomically, and never resumed while their run still trains."""

from __future__ import annotations

from pathlib import Path

from digit_recognizer.runs import RunLogger


def test_each_logger_claims_its_own_folder_even_when_the_listing_is_stale(tmp_path, monkeypatch):
    first = RunLogger(save_dir=str(tmp_path), name="runs")
    assert first.version == 0 and (tmp_path / "runs" / "version_0").is_dir()
    # A second process that listed the folder before the first claimed version_0 picks 0 as well:
    # the exclusive mkdir makes it move on instead of sharing the folder.
    monkeypatch.setattr(Path, "iterdir", lambda self: iter(()))
    second = RunLogger(save_dir=str(tmp_path), name="runs")
    assert second.version == 1


def test_discard_takes_back_an_unused_claimed_folder(tmp_path):
    logger = RunLogger(save_dir=str(tmp_path), name="runs")
    folder = Path(logger.log_dir)
    assert folder.is_dir()
    logger.discard()
    assert not folder.exists() and not (tmp_path / "runs").exists()


def test_discard_of_a_logger_that_logged_nothing_removes_its_event_file(tmp_path):
    logger = RunLogger(save_dir=str(tmp_path), name="runs")
    logger.experiment  # Lightning creates the event file while it sets a run up
    assert list(Path(logger.log_dir).glob("events.out.tfevents.*"))
    logger.discard()
    assert not (tmp_path / "runs").exists()


def test_discard_keeps_the_events_of_a_run_that_logged_metrics(tmp_path):
    """A run that fails after some epochs (a full disk at the next checkpoint) keeps their record:
    `report` and TensorBoard still show them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = RunLogger(save_dir=str(tmp_path), name="runs")
    logger.log_metrics({"val/acc": 0.5, "epoch": 0}, step=3)
    logger.discard()
    events = list(Path(logger.log_dir).glob("events.out.tfevents.*"))
    assert len(events) == 1
    scalars = EventAccumulator(str(events[0])).Reload().Scalars("val/acc")
    assert [(s.step, s.value) for s in scalars] == [(3, 0.5)]
