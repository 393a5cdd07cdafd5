"""Train the Kaggle Digit Recognizer reference CNN with PyTorch Lightning."""

__version__ = "0.1.0"
