"""The competition's fixed facts: the images, the classes and the files Kaggle gives and takes.

The package's own file and tag names are in `names.py`.
"""

IMAGE_SIZE = 28
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE
NUM_CLASSES = 10
PIXEL_MAX = 255

LABEL_COLUMN = "label"
PIXEL_COLUMNS = tuple(f"pixel{i}" for i in range(NUM_PIXELS))

TRAIN_FILE = "train.csv"
TEST_FILE = "test.csv"
SUBMISSION_COLUMNS = ("ImageId", "Label")
