"""InferenceAveraging: the test-time shifts it accepts."""

from digit_recognizer.errors import UserError
from digit_recognizer.callbacks import InferenceAveraging

from helpers.errors import raises_one_line


def test_shifts_as_large_as_the_image_are_refused():
    with raises_one_line(UserError, match="inference.shifts"):
        InferenceAveraging(shifts=[(28, 0)])
