"""Knowledge distillation from the command line: teachers named as an option, and `ensemble --distill`."""

import pandas as pd
import torch

from digit_recognizer.data.datamodule import to_model_input
from digit_recognizer.inference import load_network
from digit_recognizer.models import DigitCNN

from helpers.cli import run_cli, workdir_args
from helpers.data import tiny_datamodule, write_tiny_data
from helpers.errors import one_line_error
from helpers.runs import member


def test_the_cli_takes_teachers_and_reports_a_wrong_split_in_one_line(teacher):
    root, path = teacher
    run_cli("fit", *workdir_args(root, "--model.distillation.teachers", f"[{path}]"), cwd=root)
    result = run_cli("fit", *workdir_args(root, "--model.distillation.teachers", f"[{path}]", "--data.split_seed", "3"), cwd=root, check=False)
    assert one_line_error(result.returncode, result.stderr) == (
        f"error: {path}: this teacher trained with val_fraction 0.1, split_seed 42, so it saw rows this run "
        f"validates on (val_fraction 0.1, split_seed 3); use teachers of the same split"
    )


def test_ensemble_distill_submits_one_student_taught_by_every_member(tmp_path):
    write_tiny_data(tmp_path)
    submission_path = tmp_path / "distilled.csv"
    result = run_cli("ensemble", "--seeds", "1", "2", "--distill",
                     *workdir_args(tmp_path, "--submission.path", str(submission_path)), cwd=tmp_path)
    members = [member(tmp_path, version) for version in (0, 1)]
    student = member(tmp_path, 2)
    assert "distilled network (seed 1): " in result.stdout
    taught_by = torch.load(student, weights_only=True)["hyper_parameters"]["distillation"]["teachers"]
    assert [(tmp_path / path).resolve() for path in taught_by] == [path.resolve() for path in members]

    datamodule = tiny_datamodule(tmp_path / "data", tmp_path)
    datamodule.setup("predict")
    network = load_network(student, like=DigitCNN()).eval()
    with torch.no_grad():
        expected = network(to_model_input(datamodule.predict_set.images)).argmax(1)
    assert pd.read_csv(submission_path)["Label"].tolist() == expected.tolist(), "the student's labels alone"
