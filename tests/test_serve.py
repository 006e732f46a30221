"""``mept serve`` for real: the server runs as its own process on a free localhost port, and is talked to over HTTP.

Two runs are trained here with tiny budgets (MiniLM): ``sentiment`` (MEPT on the review fixture,
one text field, fp32) and ``pairs`` (prompt tuning on sentence pairs, three labels, a short
``--max-length`` so long inputs are truncated, bf16 autocast: ``mept predict`` scores it in bf16). Answers must equal ``mept predict``'s on the same
rows; clients for different adapters at once are batched together; a full queue answers 503 at
once; SIGTERM answers the requests in flight, then the process exits 0.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import signal
import threading
import time
from pathlib import Path

import pytest

from mept.cli import main
from mept.serve.process import ServerProcess

FIXTURES = Path(__file__).parent / "fixtures" / "reviews"
TINY = ["--max-steps", "4", "--eval-every", "4", "--batch-size", "8", "--no-progress"]
NEW = [r["text"] for r in csv.DictReader(open(FIXTURES / "new.csv", encoding="utf-8"))]
LONG = ("a remarkably long first sentence that goes on about the weather, the market, the river and the hills "
        "far more than sixteen tokens allow")
PAIRS = [{"text": "the cat sat on the mat", "text2": "a cat was sitting on a mat"},
         {"text": "stocks fell sharply today", "text2": "the orchestra played Brahms"},
         {"text": LONG, "text2": "it rained"}]
# how far a probability may move with its batch mates (padding changes the kernels' sums): fp32 rounding, or bf16's
TOLERANCE = {"sentiment": 2e-6, "pairs": 5e-3}
STARTUP_SECONDS = 180  # loading torch, the backbone and two adapters on a loaded two-core machine


def quiet_main(args: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(args)


def pair_rows(n: int) -> list[dict[str, str]]:
    words = ["cat", "dog", "market", "river", "music", "storm", "train", "garden"]
    rows = []
    for i in range(n):
        a, b = words[i % len(words)], words[(i * 3 + 1) % len(words)]
        label = ("same", "different", "unrelated")[i % 3]
        second = {"same": f"the {a} again", "different": f"no {a} at all", "unrelated": f"a {b} somewhere"}[label]
        rows.append({"text": f"a story about the {a}", "text2": second, "label": label})
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    sentiment, pairs, lora = root / "sentiment", root / "pairs", root / "lora"
    assert quiet_main(["train", "--train-file", str(FIXTURES / "train.csv"), "--output", str(sentiment),
                       "--max-length", "64", "--experts", "2", "--prompt-length", "4", *TINY]) == 0
    assert quiet_main(["train", "--method", "prompt_tuning", "--train-file", str(write_csv(root / "p.csv", pair_rows(36))),
                       "--text-pair-field", "text2", "--output", str(pairs), "--max-length", "16", "--prompt-length", "3",
                       "--mixed-precision", "bf16", *TINY]) == 0  # mept predict scores this run in bf16
    assert quiet_main(["train", "--method", "lora", "--train-file", str(FIXTURES / "train.csv"), "--output", str(lora),
                       "--max-length", "64", "--max-steps", "1", "--eval-every", "1", "--no-progress"]) == 0
    return {"root": root, "sentiment": sentiment, "pairs": pairs, "lora": lora}


def Server(args: list[str]) -> ServerProcess:
    return ServerProcess(args, startup_seconds=STARTUP_SECONDS, env={"OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def server(runs):
    srv = Server([f"sentiment={runs['sentiment']}", f"pairs={runs['pairs']}", "--max-wait-ms", "100",
                  "--max-queue", "40", "--max-inputs", "20"])
    yield srv
    srv.stop()


def predicted_file(runs, tmp_path, run: str, rows: list[dict]) -> list[dict]:
    src = write_csv(tmp_path / f"{run}.csv", rows)
    out = tmp_path / f"{run}.jsonl"
    assert quiet_main(["predict", str(runs[run]), "--file", str(src), "--output", str(out)]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def assert_same(answer: dict, row: dict, tolerance: float) -> None:
    """A served answer and a ``mept predict`` row: the same label, experts and (to rounding) probabilities."""
    assert answer["label"] == row["prediction"]
    assert answer["experts"] == list(row.get("experts", {}).values())
    assert answer["probability"] == pytest.approx(row["probability"], abs=tolerance)
    assert answer["probabilities"].keys() == row["probabilities"].keys()
    for word, p in row["probabilities"].items():
        assert answer["probabilities"][word] == pytest.approx(p, abs=tolerance)


def test_answers_equal_mept_predict_on_the_same_rows(server, runs, tmp_path):
    status, body, _ = server.predict("sentiment", NEW)
    assert status == 200 and body["adapter"] == "sentiment" and body["truncated"] == 0
    expected = predicted_file(runs, tmp_path, "sentiment", [{"text": t} for t in NEW])
    assert len(body["predictions"]) == len(NEW)
    for answer, row in zip(body["predictions"], expected):
        assert_same(answer, row, TOLERANCE["sentiment"])
        assert len(answer["experts"]) == 6  # MEPT on every MiniLM layer: one expert per prompted layer

    status, body, _ = server.predict("pairs", PAIRS)  # sentence pairs: objects with the run's two fields
    assert status == 200
    expected = predicted_file(runs, tmp_path, "pairs", PAIRS)
    for answer, row in zip(body["predictions"], expected):
        assert_same(answer, row, TOLERANCE["pairs"])
        assert answer["experts"] == []  # prompt tuning is not routed
    assert [a["truncated"] for a in body["predictions"]] == [False, False, True]  # cut as mept predict cuts it
    assert body["truncated"] == 1


def test_adapters_health_and_openapi_describe_the_server(server):
    status, adapters, _ = server.request("/adapters")
    assert status == 200
    by_name = {a["name"]: a for a in adapters}
    assert by_name["sentiment"]["method"] == "mept" and by_name["sentiment"]["labels"] == ["negative", "positive"]
    assert by_name["sentiment"]["fields"] == ["text"] and by_name["sentiment"]["output_form"] == "cls"
    assert by_name["pairs"]["labels"] == ["different", "same", "unrelated"]
    assert by_name["pairs"]["fields"] == ["text", "text2"] and by_name["pairs"]["max_length"] == 16
    status, health, _ = server.request("/health")
    assert status == 200 and health["status"] == "ok" and health["adapters"] == 2
    status, schema, _ = server.request("/openapi.json")
    assert status == 200 and {"/health", "/adapters", "/predict"} <= set(schema["paths"])
    assert "PredictRequest" in schema["components"]["schemas"]


def test_concurrent_clients_for_different_adapters_share_batches_and_get_their_own_answers(server):
    alone = {("sentiment", t): server.predict("sentiment", [t])[1]["predictions"][0] for t in NEW[:4]}
    alone.update({("pairs", json.dumps(p)): server.predict("pairs", [p])[1]["predictions"][0] for p in PAIRS})
    before = server.request("/health")[1]["mixed_batches"]
    jobs = [("sentiment", t) for t in NEW[:4]] + [("pairs", json.dumps(p)) for p in PAIRS]
    jobs = jobs * 2
    results: dict[int, tuple] = {}
    start = threading.Barrier(len(jobs))

    def client(i: int, adapter: str, key: str) -> None:
        start.wait()
        row = json.loads(key) if adapter == "pairs" else key
        results[i] = server.predict(adapter, [row])

    threads = [threading.Thread(target=client, args=(i, *job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == len(jobs)
    for i, (adapter, key) in enumerate(jobs):
        status, body, _ = results[i]
        assert status == 200 and body["adapter"] == adapter
        got, want = body["predictions"][0], alone[(adapter, key)]
        assert got["label"] == want["label"] and got["experts"] == want["experts"]
        assert got["probability"] == pytest.approx(want["probability"], abs=TOLERANCE[adapter])
    # requests of both adapters were taken together (the model then scores each run in its own precision)
    assert server.request("/health")[1]["mixed_batches"] > before


def test_bad_requests_get_one_line_4xx_never_a_traceback(server):
    cases = [
        (b"{bad", {}, 400, "not valid JSON"),
        ({"adapter": "nope", "inputs": ["x"]}, {}, 404, "unknown adapter 'nope'; loaded: sentiment, pairs"),
        ({"adapter": "sentiment", "inputs": [3]}, {}, 422, "inputs.0: should be a text or an object of fields"),
        ({"adapter": "sentiment", "inputs": []}, {}, 422, "inputs: List should have at least 1 item"),
        ({"adapter": "sentiment", "inputs": ["x"], "extra": 1}, {}, 422, "extra: Extra inputs are not permitted"),
        ({"adapter": "pairs", "inputs": ["only one text"]}, {}, 422, "reads the fields text, text2"),
        ({"adapter": "sentiment", "inputs": [{"txt": "x"}]}, {}, 422, "inputs:1: missing field 'text'"),
        ({"adapter": "sentiment", "inputs": ["x"] * 21}, {}, 413, "21 inputs in one request; at most 20"),
        ({"adapter": "sentiment", "inputs": ["x" * 2_000_000]}, {}, 413, "larger than 1,048,576 bytes"),
        (b'{"adapter": "sentiment", "inputs": ["x"]}', {"Content-Type": "text/plain"}, 415, "send JSON"),
    ]
    for body, headers, status, message in cases:
        got, answer, _ = server.request("/predict", body, headers=headers)
        assert got == status, (body, answer)
        assert list(answer) == ["error"] and message in answer["error"], answer
        assert "\n" not in answer["error"] and "Traceback" not in answer["error"]
    got, answer, _ = server.request("/nowhere")
    assert got == 404 and answer == {"error": "Not Found"}
    assert server.request("/health")[1]["status"] == "ok"  # still serving


def test_a_full_queue_answers_503_at_once_and_nothing_hangs(server):
    results: list[tuple[int, float, dict]] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def client() -> None:
        start.wait()
        t0 = time.perf_counter()
        status, body, headers = server.predict("sentiment", NEW[:1] * 20)
        with lock:
            results.append((status, time.perf_counter() - t0, headers, body))

    threads = [threading.Thread(target=client) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 12  # every client got an answer
    refused = [r for r in results if r[0] == 503]
    served = [r for r in results if r[0] == 200]
    assert refused and served and len(refused) + len(served) == 12
    assert all("overloaded" in body["error"] and headers.get("Retry-After") == "1" for _, _, headers, body in refused)
    assert min(seconds for _, seconds, _, _ in refused) < 5  # refused at once, not after waiting in line


def test_sigterm_answers_the_requests_in_flight_then_exits_0(runs):
    srv = Server([f"sentiment={runs['sentiment']}", "--max-wait-ms", "1500"])
    results: dict[int, tuple] = {}

    def client(i: int) -> None:
        results[i] = srv.predict("sentiment", [NEW[i]])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # all four are queued (the batch waits 1.5 s for more) when SIGTERM comes
        queued = srv.request("/health")[1]["queued_rows"]
        if queued == 4:
            break
        time.sleep(0.02)
    assert queued == 4
    srv.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(120)
    code, out, err = srv.stop()
    assert code == 0, err
    assert [results[i][0] for i in range(4)] == [200] * 4
    assert "stopped; answered 4 request(s)" in out
    assert "Traceback" not in err


def test_unservable_runs_are_one_error_line_before_anything_listens(runs, capsys, tmp_path):
    import shutil

    other = tmp_path / "other-backbone"  # the same run, as if trained on MPNet: refused before any backbone loads
    shutil.copytree(runs["sentiment"], other)
    config = json.loads((other / "run_config.json").read_text())
    (other / "run_config.json").write_text(json.dumps({**config, "model": "mpnet"}))
    for args, message in [
        ([f"a={runs['sentiment']}", f"b={other}"], "was trained with backbone 'mpnet'"),
        ([str(runs["lora"])], "is a lora run; mixed batches serve prompt adapters"),
        ([f"a={runs['sentiment']}", f"a={runs['pairs']}"], "two runs are named 'a'"),
        ([str(runs["root"] / "missing")], "does not exist"),
        ([str(runs["sentiment"]), "--max-inputs", "500"], "--max-inputs 500 exceeds --max-queue 256"),
    ]:
        assert main(["serve", *args, "--port", "0"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("mix", [True, False])
def test_the_batcher_mixes_adapters_in_arrival_order_or_keeps_one_adapter_per_batch(mix):
    from mept.serve.batcher import Batcher

    batches: list[list[tuple[str, int]]] = []
    gate = threading.Event()

    def run(items):
        gate.wait(10)  # the first batch holds the worker while the rest of the requests queue up
        batches.append(list(items))
        return [n * 10 for _, n in items]

    batcher = Batcher(run, max_batch_size=4, max_wait=0.0, max_queue=100, key=lambda item: item[0], mix=mix)
    first = batcher.submit([("a", 0)])
    time.sleep(0.2)  # the worker has taken the first request and waits at the gate
    arrivals = [("a", 1), ("b", 2), ("a", 3), ("b", 4), ("b", 5), ("a", 6)]
    futures = [batcher.submit([item]) for item in arrivals]
    gate.set()
    assert first.result(10) == [0] and [f.result(10) for f in futures] == [[10], [20], [30], [40], [50], [60]]
    batcher.close(10)
    if mix:  # arrival order, up to 4 rows a forward, adapters mixed
        assert batches == [[("a", 0)], [("a", 1), ("b", 2), ("a", 3), ("b", 4)], [("b", 5), ("a", 6)]]
        assert batcher.stats.mixed_batches == 2
    else:  # the oldest request's adapter first, the others keep their place
        assert batches == [[("a", 0)], [("a", 1), ("a", 3), ("a", 6)], [("b", 2), ("b", 4), ("b", 5)]]
        assert batcher.stats.mixed_batches == 0
    assert batcher.stats.rows == 7 and batcher.stats.requests == 7
