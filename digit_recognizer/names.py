"""The package's own names: files in a run folder, TensorBoard tags, checkpoint keys. One home for
each, so that the code that writes a file or tag and the code that reads it agree.

The competition's facts (image size, classes, Kaggle's file names) are in `constants.py`.
"""

# -- a run folder (lightning_logs/version_N/) and an ensemble's (lightning_logs/ensemble_N/) -----------
LAST = "last.ckpt"  # checkpoints/last.ckpt: written after every epoch, what `--ckpt_path last` resumes
SUBMISSION_FILE = "submission.csv"
PROJECTOR_CONFIG = "projector_config.pbtxt"  # TensorBoard's list of a run's embeddings
ENSEMBLE_STATE = "ensemble.json"  # an ensemble's members and which of them finished
OOF_FILE = "oof.csv"  # an ensemble --folds: each train.csv row predicted out of fold
OOF_SUMMARY = "oof.json"

# -- TensorBoard tags -----------------------------------------------------------------------------------
BEST_ACCURACY = "val/acc_best"  # the run's best validation accuracy: also the HParams metric
CONFUSION_COUNTS_TAG = "confusion_matrix/raw_counts"  # prefixed by stage: the raw matrix in the event files
MISTAKES_TAG = "most_confident_mistakes"  # "val/..." or "test/...": the logged grid of wrong images
STAGE_NAMES = {"val": "Validation", "test": "Test"}
EPOCH_TAG = "trainer/epoch"  # Lightning's epoch counter ("epoch" in its own logger): out of the Time Series' lead

# -- commands ------------------------------------------------------------------------------------------
EVALUATING_COMMANDS = ("validate", "test", "predict")  # equal to Lightning's TrainerFn values

# -- the LightningModule and its checkpoints ------------------------------------------------------------
NETWORK = "network"  # the module's attribute holding its network, the prefix of its state_dict keys
FORMAT_KEY = "digit_recognizer_format"  # the checkpoint layout's version
INFERENCE_STATE = "InferenceAveraging"  # the recipe's inference settings among a checkpoint's callback states
