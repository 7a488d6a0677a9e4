"""What the search finds: every GAN family's champion against the no-search DCGAN at equal images.

    python bench/bench_quality.py --budget small --datasets mnist5k,photos --seeds 0,1,2 \\
        --spaces dggan,progan,mspgsen,san --out bench/results/quality-small

For every dataset and seed, each space runs as a user runs it, ``genas search SPACE --budget B
--dataset D --seed S`` (a subprocess, its own genas home; ``--dggan-set KEY=VALUE`` adds dggan
options, ``--progan-set`` progan's), which also trains the no-search
reference: the ``dcgan`` space's trial 0, the paper's configuration, on the champion's own
training images (``genas/search/baseline.py``). progan gets as many trials as fit in dggan's
total search images (each progan trial trains on a dggan lineage's images), so that the two
compare at equal search cost (``--search-images N`` gives progan a dggan search's images run in
another invocation). Every champion and reference is then scored the same way here:
1,000 samples (seed 0) against the dataset, SWD (and on digits ``fid_digitnet`` and ``classes``,
the number of digits the samples spread over; on colour images ``colour_gap``, how far the
samples' mean colour is from the data's); the real data against itself (two disjoint
halves of 1,000) gives the floor. Results: one JSON line per run in ``OUT/results.jsonl``, a
markdown table on stdout and in ``OUT/table.md``, and each champion's and reference's sample
grid as ``OUT/<dataset>-s<seed>-<space>.png`` / ``...-dcgan.png`` (a path in the dataset's name
becomes dashes: ``npz-data-faces.npz@32-s0-dggan.png``). A dataset of fewer than 2,000 images gets
a floor of two halves of itself, ``nearest`` (``nearest_ratio``: near 0, the samples copy the
training images) and ``...-nearest.png``, rows of samples over their nearest training images.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

SAMPLES = 1_000
DIGITS = {"nearest": 2, "recognisable": 2}  # decimals in the table (1 for the rest)
SMALL_DATASET = 2 * SAMPLES  # fewer images: the floor halves the data, and samples are checked for copies
SEARCH_IMAGES_SPACE = "dggan"  # progan gets this space's total search images
MLFLOW_URIS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def run_genas(home: Path, args: list[str], log: Path) -> None:
    """``genas ARGS`` in a subprocess on ``home`` (its own storage and MLflow), output appended to ``log``."""
    cmd = [sys.executable, "-m", "genas.cli", *args]
    env = {**os.environ, "GENAS_HOME": str(home), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    for exported in MLFLOW_URIS:  # mlflow.set_*_uri export these: the last home's would win
        env.pop(exported, None)
    out = subprocess.run(cmd, env=env, cwd=home, capture_output=True, text=True)
    with open(log, "a") as fh:
        fh.write(out.stdout + out.stderr)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")


def use_home(home: Path) -> None:
    """Point this process's genas and MLflow at ``home`` (a home another bench run wrote)."""
    os.environ["GENAS_HOME"] = str(Path(home).resolve())
    for exported in MLFLOW_URIS:
        os.environ.pop(exported, None)
    from genas.registry.tracking import configure_mlflow

    configure_mlflow()


def search(space: str, dataset: str, budget: str, seed: int, home: Path, trials: int | None,
           options: list[str] = ()) -> float:
    """Wall seconds of ``genas search``; a search this bench already finished in ``home`` is not rerun
    (an interrupted bench resumes where it stopped)."""
    done = home / f"{space}.wall"
    if done.exists():
        return float(done.read_text())
    start = time.perf_counter()
    run_genas(home, ["search", space, "--budget", budget, "--dataset", dataset, "--seed", str(seed)]
              + (["--trials", str(trials)] if trials else []) + [a for o in options for a in ("--set", o)],
              home / f"{space}.log")
    seconds = time.perf_counter() - start
    done.write_text(f"{seconds:.1f}")
    return seconds


def score(generator, dataset, metrics: list[str]) -> dict[str, float]:  # noqa: ANN001
    from genas.evaluators import evaluate

    fake = generator.sample(SAMPLES, seed=0)
    result = evaluate(fake, dataset, metrics, n_real=SAMPLES, seed=0)
    scores = {m: result[m] for m in metrics}
    if "fid_digitnet" in metrics:
        scores["classes"] = digit_classes(fake)
        scores["recognisable"] = recognisable(fake)
    if fake.shape[1] == 3:
        scores["colour_gap"] = colour_gap(fake, dataset)
    if len(dataset) < SMALL_DATASET:
        scores["nearest"] = nearest_ratio(fake, dataset)
    return scores


def nearest_ratio(images: torch.Tensor, dataset) -> float:  # noqa: ANN001
    """How close the samples come to copying training images: the median over samples of the
    distance (pixels, L2) to the nearest training image over that to the second nearest. A copy sits
    on one training image (near 0); a new image, like a held-out real one, is about as far from its
    nearest as from the next (the floor's value); a blurry average is near every image, so the plain
    distance would call it a copy and this ratio does not. SWD cannot tell a generator that memorised
    a hundred images from one that learned them."""
    distances = torch.cdist(images.flatten(1).float(), dataset.uint8().flatten(1).float())
    two = distances.topk(2, dim=1, largest=False).values
    return float((two[:, 0] / two[:, 1]).median())


def colour_gap(images: torch.Tensor, dataset) -> float:  # noqa: ANN001
    """The largest gap between the samples' and the data's mean of a colour channel, in 0-255 steps:
    a GAN that has not converged shows it here first (a green cast where the photos have none)."""
    fake_means = images.float().mean(dim=(0, 2, 3))
    real_means = dataset.uint8().float().mean(dim=(0, 2, 3))
    return float((fake_means - real_means).abs().max())


def digit_classes(images: torch.Tensor) -> float:
    """How many digits the samples spread over: exp of the entropy of digitnet's predicted classes
    (10 for the ten digits in equal shares, 1 for a single digit). SWD's 7x7 patches hardly see a
    mode collapse (a generator of clean 8s has the data's strokes); this number does."""
    from genas.evaluators.features import digitnet_input, get_extractor

    with torch.no_grad():
        predicted = get_extractor("digitnet").net(digitnet_input(images)).argmax(1)
    shares = torch.bincount(predicted, minlength=10).float() / len(predicted)
    shares = shares[shares > 0]
    return float(torch.exp(-(shares * shares.log()).sum()))


def recognisable(images: torch.Tensor, confidence: float = 0.9) -> float:
    """The share of samples that digitnet reads as one digit with probability >= ``confidence``
    (the data: 0.99). A loop or hook that is no digit splits digitnet's vote; this counts the
    samples a reader would call a digit, which ``digit_classes`` (the spread) does not."""
    from genas.evaluators.features import digitnet_input, get_extractor

    with torch.no_grad():
        probabilities = get_extractor("digitnet").net(digitnet_input(images)).softmax(1)
    return float((probabilities.max(1).values >= confidence).float().mean())


def collect(space: str, dataset_name: str, home: Path, metrics: list[str], out: Path, tag: str) -> dict:
    """The champion, its search cost and the reference, read back from the run's own storage."""
    import optuna

    import genas
    from genas.data import load_dataset
    from genas.images import save_grid
    from genas.registry.promote import best_trial, registered_name
    from genas.search.baseline import BASELINE_ATTR
    from genas.search.beam import FINALIST_ATTR
    from genas.search.study import default_study_name

    use_home(home)
    dataset = load_dataset(dataset_name)
    storage = f"sqlite:///{home / 'optuna.db'}"
    name = default_study_name(space, dataset_name)
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    champion = best_trial(study)
    search_images = _search_images(trials)
    searched_seconds = sum(t.duration.total_seconds() for t in trials if t.duration)
    generator = genas.load(f"models:/{registered_name(name)}@champion")
    save_grid(generator.sample(64, seed=0), out / f"{tag}-{space}.png")
    if len(dataset) < SMALL_DATASET:
        save_grid(beside_nearest(generator.sample(32, seed=0), dataset), out / f"{tag}-{space}-nearest.png", nrow=8)
    row = {"space": space, "trials": len(trials),
           "complete": sum(t.state.name == "COMPLETE" for t in trials),
           "champion": champion.number, "champion_images": champion.user_attrs.get("lineage_images"),
           "search_images": search_images, "search_seconds": searched_seconds,
           **{f"champion_{m}": v for m, v in score(generator, dataset, metrics).items()}}
    # a dggan finalist and its parent (the search's best before the finishing images), side by side
    finalist = next((t for t in trials if t.user_attrs.get(FINALIST_ATTR) and t.state.name == "COMPLETE"), None)
    parent = next((t for t in trials if finalist is not None and t.number == finalist.user_attrs.get("parent")), None)
    for key, trial in (("finalist", finalist), ("before_finish", parent)):
        if trial is not None and "mlflow_run_id" in trial.user_attrs:
            model = genas.load(f"runs:/{trial.user_attrs['mlflow_run_id']}/model")
            save_grid(model.sample(64, seed=0), out / f"{tag}-{space}-{key.replace('_', '-')}.png")
            row.update({f"{key}_trial": trial.number, f"{key}_images": trial.user_attrs.get("lineage_images"),
                        **{f"{key}_{m}": v for m, v in score(model, dataset, metrics).items()}})
    baseline = study.user_attrs.get(BASELINE_ATTR)
    if baseline:
        ref = genas.load(f"runs:/{baseline['run_id']}/model")
        save_grid(ref.sample(64, seed=0), out / f"{tag}-{space}-dcgan.png")
        row.update({"baseline_images": baseline["images"],
                    **{f"baseline_{m}": v for m, v in score(ref, dataset, metrics).items()}})
    return row


def beside_nearest(images: torch.Tensor, dataset) -> torch.Tensor:  # noqa: ANN001
    """Rows of eight samples, each row followed by the training images nearest to them (pixels, L2)."""
    real = dataset.uint8()
    nearest = real[torch.cdist(images.flatten(1).float(), real.flatten(1).float()).argmin(1)]
    rows = [part for i in range(0, len(images), 8) for part in (images[i:i + 8], nearest[i:i + 8])]
    return torch.cat(rows)


def _search_images(trials) -> int:  # noqa: ANN001
    """The images every trial of the study trained on (a dggan child: its own, not its lineage's)."""
    by_number = {t.number: t for t in trials}
    total = 0
    for t in trials:
        images = t.user_attrs.get("lineage_images")
        if images is None:
            continue
        parent = t.user_attrs.get("parent")
        if parent is not None and parent in by_number:
            images -= by_number[parent].user_attrs.get("lineage_images", 0)
        total += images
    return total


def floor(dataset_name: str, metrics: list[str]) -> dict[str, float]:
    """The real data against itself: two disjoint random halves of SAMPLES images (of half the data
    when it holds fewer than twice SAMPLES)."""
    from genas.data import Dataset, load_dataset
    from genas.evaluators import evaluate

    data = load_dataset(dataset_name)
    half = min(SAMPLES, len(data) // 2)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(1))
    fake = data.uint8()[order[:half]]
    rest = Dataset(data.name, data.key + "-rest", data.images[order[half:]])
    scores = {m: v for m, v in evaluate(fake, rest, metrics, n_real=half, seed=0).items() if m in metrics}
    if "fid_digitnet" in metrics:
        scores["classes"] = digit_classes(fake)
        scores["recognisable"] = recognisable(fake)
    if fake.shape[1] == 3:
        scores["colour_gap"] = colour_gap(fake, data)
    if len(data) < SMALL_DATASET:
        scores["nearest"] = nearest_ratio(fake, rest)
    return scores


def slug(dataset: str) -> str:
    """A dataset's name as a file name (``npz:/data/faces.npz@32`` -> ``npz-data-faces.npz@32``)."""
    return re.sub(r"[^A-Za-z0-9_.@-]+", "-", dataset).strip("-")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", default="small")
    p.add_argument("--datasets", default="mnist5k,photos")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--spaces", default="dggan,progan,mspgsen,san")
    p.add_argument("--out", default="bench/results/quality")
    p.add_argument("--dggan-set", action="append", default=[], metavar="KEY=VALUE",
                   help="a dggan option for its searches (repeatable), e.g. finish=20000")
    p.add_argument("--progan-set", action="append", default=[], metavar="KEY=VALUE",
                   help="a progan option for its searches (repeatable), e.g. augment=translation")
    p.add_argument("--search-images", type=int, default=0, metavar="N",
                   help="progan's equal search images when dggan is not among --spaces (a dggan search's "
                        "'search images', e.g. 52352 at small)")
    args = p.parse_args()
    out = Path(args.out).resolve()
    space_options = {"dggan": args.dggan_set, "progan": args.progan_set}
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}; budget {args.budget}", flush=True)
    rows = []
    for dataset in args.datasets.split(","):
        metrics = ["swd", "fid_digitnet"] if dataset in ("mnist5k", "digits") else ["swd"]
        real = floor(dataset, metrics)
        print(f"{dataset}: real vs real {json.dumps({k: round(v, 2) for k, v in real.items()})}", flush=True)
        for seed in (int(s) for s in args.seeds.split(",")):
            tag = f"{slug(dataset)}-s{seed}"
            home = out / "homes" / tag
            home.mkdir(parents=True, exist_ok=True)
            search_images = args.search_images or None
            for space in args.spaces.split(","):
                trials = None
                if space == "progan" and search_images:  # equal total search images
                    from genas.spaces import get_space

                    trials = max(1, round(search_images / get_space("progan").budget(args.budget)["images_per_trial"]))
                wall = search(space, dataset, args.budget, seed, home, trials,
                              space_options.get(space, []))
                row = {"dataset": dataset, "seed": seed, "budget": args.budget, "machine": machine(),
                       **({"options": space_options[space]} if space_options.get(space) else {}),
                       "wall_seconds": wall, "load_15min": round(os.getloadavg()[2], 1), **collect(space, dataset, home, metrics, out, tag),
                       **{f"real_{m}": v for m, v in real.items()}}
                if space == SEARCH_IMAGES_SPACE:
                    search_images = row["search_images"]
                rows.append(row)
                with open(out / "results.jsonl", "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    # the table holds every run recorded in OUT (earlier invocations too), the latest per (dataset, seed, space)
    latest = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        latest[(row["dataset"], row["seed"], row["space"])] = row
    table = render(list(latest.values()))
    (out / "table.md").write_text(table)
    print(table)


def render(rows: list[dict]) -> str:
    metrics = list(dict.fromkeys(k.removeprefix("champion_") for r in rows for k in r
                                 if k.startswith("champion_") and k != "champion_images"))
    head = ["dataset", "seed", "space", *(f"{m} champion" for m in metrics), *(f"{m} dcgan" for m in metrics),
            "images (champion / dcgan)", "search images", "trials", "wall min", "load"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["dataset"], str(r["seed"]), r["space"],
                 *(f"{r[f'champion_{m}']:.{DIGITS.get(m, 1)}f}" if f"champion_{m}" in r else "-" for m in metrics),
                 *(f"{r[f'baseline_{m}']:.{DIGITS.get(m, 1)}f}" if f"baseline_{m}" in r else "-" for m in metrics),
                 f"{r['champion_images'] or 0:,} / {r.get('baseline_images') or 0:,}", f"{r['search_images']:,}",
                 f"{r['complete']}/{r['trials']}", f"{r['wall_seconds'] / 60:.1f}", f"{r.get('load_15min', '-')}"]
        lines.append("| " + " | ".join(cells) + " |")
    summary = []
    for key in sorted({(r["dataset"], r["space"]) for r in rows}):
        group = [r for r in rows if (r["dataset"], r["space"]) == key]
        for m in metrics:
            mine = [r[f"champion_{m}"] for r in group if f"champion_{m}" in r]
            if not mine:
                continue
            ref = [r[f"baseline_{m}"] for r in group if f"baseline_{m}" in r]
            digits = DIGITS.get(m, 1)
            spread = (lambda v: f" ± {statistics.stdev(v):.{digits}f}" if len(v) > 1 else "")
            summary.append(f"- {key[0]} {key[1]} {m}: champion {statistics.mean(mine):.{digits}f}{spread(mine)}"
                           + (f", dcgan at equal images {statistics.mean(ref):.{digits}f}{spread(ref)}" if ref else "")
                           + f" ({len(group)} seeds)")
    return "\n".join(lines + [""] + summary) + "\n"


if __name__ == "__main__":
    main()
