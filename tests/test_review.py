"""Which pairs `udp review` picks (hand-built scores): the uncertain band, labelled pairs
left out, one pair per comparison pattern before any pattern gets a second (denser and more
uncertain patterns first), and a page that escapes what it shows."""

from __future__ import annotations

from pyspark.sql import SparkSession

from udp_spark.matching.review import expected_gain, pick_for_review, review_html

COMPARISONS = ["name", "email"]


def _scores(spark: SparkSession):
    rows = [
        # pattern name=2,email=0: four pairs, uncertain
        ("a1", "b1", 2, 0, 0.50), ("a2", "b2", 2, 0, 0.45), ("a3", "b3", 2, 0, 0.60),
        ("a4", "b4", 2, 0, 0.30),
        # pattern name=1,email=1: one pair, the most uncertain of all
        ("c1", "d1", 1, 1, 0.51),
        # pattern name=0,email=2: two pairs
        ("e1", "f1", 0, 2, 0.40), ("e2", "f2", 0, 2, 0.70),
        # sure either way: never picked
        ("g1", "h1", 3, 3, 0.999), ("g2", "h2", 0, 0, 0.001), ("g3", "h3", 3, 0, 0.96),
        # uncertain, but already labelled
        ("l1", "m1", 2, 0, 0.50),
    ]
    return spark.createDataFrame(rows, "record_id_l string, record_id_r string, name int, "
                                       "email int, match_probability double")


def test_round_robin_over_patterns_denser_first_sure_and_labelled_left_out(
        spark: SparkSession) -> None:
    labelled = spark.createDataFrame([("l1", "m1", True)],
                                     "record_id_l string, record_id_r string, is_match boolean")
    got = [(r["record_id_l"], r["pattern"], r["review_rank"]) for r in pick_for_review(
        _scores(spark), COMPARISONS, 20, labelled=labelled).orderBy("review_rank").collect()]
    ids = [g[0] for g in got]
    assert [g[2] for g in got] == list(range(1, len(got) + 1))
    # not the sure ones (p > 0.95 or < 0.05), not the labelled one
    assert set(ids) == {"a1", "a2", "a3", "a4", "c1", "e1", "e2"}
    # round one: each pattern's most uncertain pair, the densest pattern (4 pairs) first,
    # then the two-pair pattern, then the single pair, though it is the most uncertain
    assert ids[:3] == ["a1", "e1", "c1"]
    assert len({g[1] for g in got[:3]}) == 3
    # round two: the second most uncertain of each pattern that has one
    assert ids[3:5] == ["a2", "e2"]
    assert ids[5:] == ["a3", "a4"]
    assert got[0][1] == "name=2,email=0"


def test_n_and_band_limit_the_picks(spark: SparkSession) -> None:
    two = pick_for_review(_scores(spark), COMPARISONS, 2).collect()
    first, second = (r["record_id_l"] for r in sorted(two, key=lambda r: r["review_rank"]))
    # nothing labelled given: l1 ties a1 (p 0.5) in the densest pattern, the seed decides
    assert first in ("a1", "l1") and second == "e1"
    narrow = pick_for_review(_scores(spark), COMPARISONS, 20, min_uncertainty=0.85).collect()
    assert {r["record_id_l"] for r in narrow} == {"a1", "a2", "c1", "l1"}  # p 0.425..0.575
    assert all(r["uncertainty"] >= 0.85 for r in narrow)


def test_page_escapes_values_and_names_levels() -> None:
    row = {"review_rank": 1, "record_id_a": "crm:1", "record_id_b": "shop:<2>",
           "match_probability": 0.5, "pattern": "name=2,email=0", "pattern_pairs": 4,
           "a_given_name": "Ann", "b_given_name": "<script>x</script>"}
    page = review_html([row], {"name": {2: "exact"}, "email": {0: "different"}})
    assert "&lt;script&gt;" in page and "<script>x" not in page
    assert "shop:&lt;2&gt;" in page
    assert "exact" in page and "different" in page


def test_expected_gain_is_one_bit_at_p_half() -> None:
    assert expected_gain([1.0]) == 1.0
    assert expected_gain([0.0]) == 0.0
    assert 0 < expected_gain([0.5]) < 1
