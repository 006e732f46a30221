"""``mept train --report-to``: one small run logged to TensorBoard, MLflow, W&B and Trackio at once, all offline,
then read back through each tracker's own reader: the loss every step, validation and routing health at every
evaluation, the run's settings, the run named after its output folder."""

from __future__ import annotations

import contextlib
import glob
import io
import json
import struct
import sys
from pathlib import Path

import pytest

from mept.cli import main
from mept.errors import MeptError
from mept.harness.train_config import TrainConfig

FIXTURES = Path(__file__).parent / "fixtures" / "reviews"
RUN = ["--train-file", str(FIXTURES / "train.csv"), "--max-steps", "4", "--eval-every", "2", "--batch-size", "8",
       "--max-length", "64", "--experts", "2", "--prompt-length", "4", "--no-progress"]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracking")
    out = root / "run"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", (root / "mlruns").as_uri())
        env.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps its file store behind this switch
        env.setenv("WANDB_MODE", "offline")
        env.setenv("WANDB_SILENT", "true")
        env.setenv("TRACKIO_DIR", str(root / "trackio"))
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["train", *RUN, "--output", str(out),
                         "--report-to", "tensorboard", "mlflow", "wandb", "trackio"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    return {"root": root, "out": out, "history": {h["step"]: h for h in metrics["history"]}}


def test_tensorboard_events_inside_the_run_folder_hold_loss_lr_validation_and_routing(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tracked["out"] / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]

    def series(tag):
        return {e.step: e.value for e in events.Scalars(tag)}

    assert sorted(series("train/loss")) == [1, 2, 3, 4]
    assert series("train/loss")[4] == pytest.approx(tracked["history"][4]["loss"], abs=1e-5)
    assert {"train/lr/prompt", "train/lr/router", "train/lr/head"} <= set(scalars)
    history = tracked["history"]
    assert series("validation/average") == pytest.approx({s: h["validation"] for s, h in history.items()})
    assert series("routing/mean_entropy") == pytest.approx({s: h["routing_entropy"] for s, h in history.items()},
                                                           abs=1e-4)
    assert series("routing/collapsed_layers") == {s: h["collapsed_layers"] for s, h in history.items()}
    for layer in range(1, 7):  # MEPT on every MiniLM layer: health per prompted layer
        assert {f"routing/layer_{layer}/entropy", f"routing/layer_{layer}/collapsed",
                f"routing/layer_{layer}/load/expert_0", f"routing/layer_{layer}/load/expert_1"} <= set(scalars)
        loads = [series(f"routing/layer_{layer}/load/expert_{e}")[4] for e in (0, 1)]
        assert sum(loads) == pytest.approx(1.0, abs=1e-3)
        assert series(f"routing/layer_{layer}/collapsed")[4] == float(max(loads) >= 0.9)
        histogram = events.Histograms(f"routing/layer_{layer}/load")
        assert [h.step for h in histogram] == [2, 4] and histogram[-1].histogram_value.num == 6  # 6 validation rows
    config = glob.glob(str(tracked["out"] / "tensorboard" / "*" / "hparams.yml"))
    assert config and "method: mept" in Path(config[0]).read_text()


def test_mlflow_run_in_a_local_file_store_is_named_after_the_output_folder(tracked):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(tracked["root"] / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("mept")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == str(tracked["out"])
    assert run.data.params["method"] == "mept" and run.data.params["max_steps"] == "4"
    average = client.get_metric_history(run.info.run_id, "validation/average")
    assert {m.step: m.value for m in average} == pytest.approx({s: h["validation"] for s, h in tracked["history"].items()})
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2, 3, 4]
    assert {"routing/layer_1/entropy", "routing/layer_6/collapsed", "routing/layer_3/load/expert_1"} <= set(run.data.metrics)


def wandb_records(path: str):
    """The records of W&B's offline run file: its header, then a LevelDB-style log of protobuf records."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending + chunk)
            pending = b""
            yield record
        elif kind in (2, 3):
            pending += chunk


def test_wandb_offline_run_sits_in_the_run_folder(tracked):
    (path,) = glob.glob(str(tracked["out"] / "wandb" / "offline-run-*" / "run-*.wandb"))
    name, config, history = None, {}, []
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            name = record.run.display_name
            config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
    assert name == str(tracked["out"]) and config["method"] == "mept"
    evaluated = {h["_step"]: h for h in history if "validation/average" in h}
    assert sorted(evaluated) == [2, 4]
    assert evaluated[4]["validation/average"] == pytest.approx(tracked["history"][4]["validation"])
    assert evaluated[4]["routing/layer_1/load/_type"] == "histogram"
    assert sum(evaluated[4]["routing/layer_1/load/values"]) == 6


def test_trackio_logs_to_its_local_store(tracked):
    from trackio.sqlite_storage import SQLiteStorage

    logs = SQLiteStorage.get_logs("mept", str(tracked["out"]))
    evaluated = {row["step"]: row for row in logs if "validation/average" in row}
    assert sorted(evaluated) == [2, 4] and "routing/layer_2/entropy" in evaluated[2]
    assert [row["step"] for row in logs if "train/loss" in row] == [1, 2, 3, 4]


def test_report_to_is_checked_with_the_other_settings():
    assert TrainConfig().report_to == [] and TrainConfig(report_to=["none"]).report_to == []
    assert TrainConfig(report_to=["TensorBoard", "mlflow", "tensorboard"]).report_to == ["tensorboard", "mlflow"]
    with pytest.raises(MeptError, match="--report-to comet: not a tracker; use tensorboard, mlflow, wandb, trackio"):
        TrainConfig(report_to=["comet"])
    with pytest.raises(MeptError, match="none cannot be combined"):
        TrainConfig(report_to=["none", "wandb"])


def test_a_tracker_that_is_not_installed_is_one_error_line_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what Python does for a package that is not there
    out = tmp_path / "run"
    assert main(["train", *RUN, "--output", str(out), "--report-to", "tensorboard", "mlflow"]) == 2
    err = capsys.readouterr().err
    assert err == 'error: --report-to mlflow: the mlflow package is not installed; pip install "mept[tracking]"\n'
    assert not out.exists()


def test_wandb_online_without_a_login_is_refused_up_front(tmp_path, monkeypatch, capsys):
    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "netrc").write_text("")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert main(["train", *RUN, "--output", str(tmp_path / "run"), "--report-to", "wandb"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --report-to wandb: W&B is not logged in") and "WANDB_MODE=offline" in err
    assert not (tmp_path / "run").exists()
