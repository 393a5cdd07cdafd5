"""The competition's fixed facts: one place for every constant the package shares."""

IMAGE_SIZE = 28
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE
NUM_CLASSES = 10
PIXEL_MAX = 255

LABEL_COLUMN = "label"
PIXEL_COLUMNS = tuple(f"pixel{i}" for i in range(NUM_PIXELS))

TRAIN_FILE = "train.csv"
TEST_FILE = "test.csv"
SUBMISSION_COLUMNS = ("ImageId", "Label")

CONFUSION_COUNTS_TAG = "confusion_matrix/raw_counts"  # prefixed by stage: the raw matrix in the event files
MISTAKES_TAG = "most_confident_mistakes"  # "val/..." or "test/...": the logged grid of wrong images
PROJECTOR_CONFIG = "projector_config.pbtxt"  # TensorBoard's list of a run's embeddings
STAGE_NAMES = {"val": "Validation", "test": "Test"}
EPOCH_TAG = "trainer/epoch"  # Lightning's epoch counter ("epoch" in its own logger): out of the Time Series' lead
