"""``vader``: real sentiment data from four domains, from the ``vaderSentiment==3.3.2`` source package.

Why this source: it installs from PyPI like our models do, so a fresh machine with no hub access
gets real, human-labelled text (BIG-bench's sdist, our other offline source, stopped being served by
PyPI on 2026-12-05). The sdist's ``additional_resources/hutto_ICWSM_2014.tar.gz`` holds the
sentence-level snippets Hutto & Gilbert (ICWSM 2014) had rated by at least 20 screened people on a
-4..+4 scale: 10,605 movie-review sentences (from Pang & Lee's rotten-tomatoes reviews, the source
of SST), 4,200 tweets, 3,708 product-review sentences (Hu & Liu 2004) and 5,190 sentences of New
York Times editorials. MIT licence.

Our choices (not the dataset's): the label is the sign of the mean rating, and snippets whose mean
lies within ``NEUTRAL_BAND`` of zero are dropped (as SST-2 drops its neutral sentences); each task
gets a fixed test split, a validation split and a capped training split, all seeded and stratified
per label, so the default mixture trains in minutes on a CPU. Each input carries a short domain
prefix, so one prompt set can tell the domains apart.
"""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

from mept.data.examples import Example
from mept.data.registry import Splits, TaskSpec, check_source, register_suite, register_task
from mept.data.splits import stratified_split
from mept.errors import MeptError, exception_line
from mept.files.archives import DAMAGED_ARCHIVE_ERRORS
from mept.files.paths import cache_dir

VERSION = "3.3.2"
TARBALL = f"vaderSentiment-{VERSION}.tar.gz"
_INNER = f"vaderSentiment-{VERSION}/additional_resources/hutto_ICWSM_2014.tar.gz"
VERBALIZER = ("negative", "positive")
NEUTRAL_BAND = 0.5  # |mean rating| < 0.5 on the -4..+4 scale: no clear polarity, dropped
TEST_SIZE, VALIDATION_SIZE, TRAIN_CAP = 400, 200, 800
DOWNLOAD = f"pip download --no-deps --no-binary :all: -d {{folder}} vaderSentiment=={VERSION}"


@dataclass(frozen=True)
class VaderTask:
    name: str
    file: str  # the ground-truth file inside hutto_ICWSM_2014/
    prefix: str
    what: str

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(self.name, VERBALIZER, "accuracy", "classification", f"VADER {self.what} (vaderSentiment sdist)")


TASKS = {
    t.name: t
    for t in [
        VaderTask("vader-movies", "movieReviewSnippets_GroundTruth.txt", "movie review:", "movie-review sentences"),
        VaderTask("vader-tweets", "tweets_GroundTruth.txt", "tweet:", "tweets"),
        VaderTask("vader-products", "amazonReviewSnippets_GroundTruth.txt", "product review:",
                  "product-review sentences"),
        VaderTask("vader-editorials", "nytEditorialSnippets_GroundTruth.txt", "editorial:", "NYT editorial sentences"),
    ]
}


def tarball_path() -> Path:
    """The sdist: ``$MEPT_VADER_TAR`` or ``<cache>/vader/vaderSentiment-3.3.2.tar.gz`` (where setup puts it)."""
    env = os.environ.get("MEPT_VADER_TAR")
    return Path(env) if env else cache_dir() / "vader" / TARBALL


def _read_ground_truth(tar: Path) -> dict[str, bytes]:
    """Every ``*_GroundTruth.txt`` of the inner archive, by file name (two small gzip reads, no extraction)."""
    with tarfile.open(tar, "r:gz") as outer:
        try:
            member = outer.extractfile(_INNER)
        except KeyError:
            member = None
        if member is None:
            raise MeptError(f"{tar} holds no {_INNER}; it is not the vaderSentiment {VERSION} source package: "
                            f"delete it and rerun `bash scripts/setup.sh`")
        inner_bytes = member.read()
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:gz") as inner:
        for m in inner.getmembers():
            name = m.name.rsplit("/", 1)[-1]
            if m.isfile() and name.endswith("_GroundTruth.txt"):
                files[name] = inner.extractfile(m).read()  # type: ignore[union-attr]
    return files


@lru_cache(maxsize=2)
def _ground_truth(tar: Path, mtime: float) -> dict[str, bytes]:
    del mtime  # part of the cache key only: a replaced file is read again
    try:
        return _read_ground_truth(tar)
    except (*DAMAGED_ARCHIVE_ERRORS, OSError) as exc:
        detail = exception_line(exc)
        raise MeptError(f"the vaderSentiment source package {tar} is damaged or truncated ({detail}); "
                        f"delete it and rerun `bash scripts/setup.sh`") from None


def read_ratings(file: str) -> list[tuple[float, str]]:
    """``(mean rating, text)`` of every row of one ground-truth file."""
    tar = tarball_path()
    if tar.is_dir():
        raise MeptError(f"{tar} is a folder; the VADER data is the file {TARBALL}: point MEPT_VADER_TAR at it")
    if not tar.is_file():
        raise MeptError(f"the VADER sentiment data (vaderSentiment {VERSION} source package) is not at {tar}; run "
                        f"`{DOWNLOAD.format(folder=tar.parent)}` (scripts/setup.sh does this) or set MEPT_VADER_TAR")
    files = _ground_truth(tar, tar.stat().st_mtime)
    if file not in files:
        raise MeptError(f"{tar} lacks {file}; delete it and rerun `bash scripts/setup.sh`")
    rows = []
    # UTF-8 (the movie sentences have accented names), CRLF line ends; a stray byte is replaced, not fatal
    for n, line in enumerate(files[file].decode("utf-8", errors="replace").splitlines(), 1):
        parts = line.split("\t")
        if len(parts) < 3 or not line.strip():
            continue
        try:
            rows.append((float(parts[1]), " ".join("\t".join(parts[2:]).split())))
        except ValueError:
            raise MeptError(f"{tar}: {file} line {n} has no numeric rating; delete the file and rerun "
                            f"`bash scripts/setup.sh`") from None
    return rows


def build_examples(task: VaderTask) -> list[Example]:
    """One example per distinct sentence: some repeat in the files (product reviews quote each other), and a
    repeat on both sides of a split would score memory, not generalisation."""
    examples = []
    seen: set[str] = set()
    for rating, text in read_ratings(task.file):
        if abs(rating) < NEUTRAL_BAND or not text or text in seen:
            continue
        seen.add(text)
        label = int(rating > 0)
        examples.append(Example(f"{task.prefix} {text}", label, VERBALIZER[label], task.name))
    return examples


def load_vader_task(name: str, source: str = "auto", data_dir: str | None = None, seed: int = 0) -> Splits:
    """``train`` / ``validation`` / ``test`` of one domain. The test split does not depend on ``seed``,
    so every run of every seed is scored on the same sentences; ``data_dir`` is unused."""
    check_source(name, source, ("auto", "vader"))
    examples = build_examples(TASKS[name])
    rest, test = stratified_split(examples, 1.0, 0, cap=TEST_SIZE)
    rest, validation = stratified_split(rest, 1.0, seed, cap=VALIDATION_SIZE)
    _, train = stratified_split(rest, 1.0, seed, cap=TRAIN_CAP)
    return {"train": train, "validation": validation, "test": test}


for _task in TASKS.values():
    register_task(_task.spec, partial(load_vader_task, _task.name))
VADER: list[str] = register_suite("vader", list(TASKS))
