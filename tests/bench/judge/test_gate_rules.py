"""The gate's rules schema, noise check and rule evaluation, in process (the CLI has its own tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.judge.gate import _baseline, _check_comparable
from bench.judge.gate_eval import RuleConfigError, evaluate
from bench.judge.gate_inputs import GateInputError, Summary, load_baseline, load_summaries
from bench.judge.gate_rules import RatioRule, RulesError, load_rules, parse_rules
from bench.judge.gate_stats import infer_windows_path, noise_test, window_values
from runfolder.summary import parse_summary
from tests.fixtures.gate.synth import make_run

BENCH = Path(__file__).resolve().parents[3] / "bench"


def summary(seed: int, **kwargs: object) -> Summary:
    return Summary(Path(f"/runs/{seed}/summary.json"), parse_summary(make_run(seed, **kwargs)[0]))


def test_packaged_rules_validate() -> None:
    rules, source = load_rules(None)
    assert "packaged default" in source
    assert {"offload_p95_abs", "offload_p95_rel", "offload_vs_noop_p95", "run_valid"} <= set(rules.rules)
    assert rules.needs_baseline


def test_ci_profile_is_ratio_rules_only() -> None:
    rules, _ = load_rules(BENCH / "gates-ci.toml")
    assert rules.rules and all(isinstance(rule, RatioRule) for rule in rules.rules.values())
    assert not rules.needs_baseline


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[rules.x\nkind = 1", "invalid TOML"),
        ('[rules.x]\nkind = "absolute"\nmetric = "a.b"\nop = "<="\nvalue = 1\nthreshold = 2\n', "rules.x.absolute.threshold: Extra inputs"),
        ('[rules.x]\nkind = "relative"\nmetric = "a.b"\nmax_increase_pct = 5\nmax_decrease_pct = 5\n', "set exactly one"),
        ('[rules.x]\nkind = "absolute"\nmetric = "modes..p95"\nop = "<="\nvalue = 1\n', "rules.x.absolute.metric: String should match"),
        ('[rules.x]\nkind = "speed"\n', "rules.x: Input tag 'speed'"),
        ('[settings]\nalpha = 2\n[rules.x]\nkind = "ratio"\nnumerator = "a"\ndenominator = "b"\nop = ">="\nvalue = 2\n', "settings.alpha"),
        ("[settings]\nalpha = 0.1\n", "rules: Field required"),
    ],
    ids=["toml", "unknown-key", "two-tolerances", "bad-path", "bad-kind", "bad-alpha", "no-rules"],
)  # fmt: skip
def test_bad_rules_give_one_line_errors(text: str, expected: str) -> None:
    with pytest.raises(RulesError) as info:
        parse_rules(text, "r.toml")
    message = str(info.value)
    assert message.startswith("bad rules file r.toml: ") and "\n" not in message
    assert expected in message


def test_unreadable_rules_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"^cannot read rules file .*nope.toml"):
        load_rules(tmp_path / "nope.toml")


def test_noise_test_separates_noise_from_a_shift() -> None:
    rng = np.random.default_rng(7)
    base = list(rng.lognormal(np.log(20), 0.2, 120))
    same = list(rng.lognormal(np.log(20), 0.2, 120))
    slower = list(rng.lognormal(np.log(30), 0.2, 120))
    quiet = noise_test(base, same, higher_is_worse=True, alpha=0.05, min_effect=0.64)
    assert not quiet.significant and 0.4 < quiet.effect < 0.6
    loud = noise_test(base, slower, higher_is_worse=True, alpha=0.05, min_effect=0.64)
    assert loud.significant and loud.effect > 0.9 and loud.p_value < 1e-6
    # For a lower-is-worse figure (throughput) growing is an improvement, never a regression.
    better = noise_test(base, slower, higher_is_worse=False, alpha=0.05, min_effect=0.64)
    assert not better.significant and better.effect < 0.1


def test_window_values_leave_out_warmup_thin_and_empty_windows() -> None:
    s = summary(1, windows=10)
    win = s.model.modes["offload"].windows
    start = s.run.modes["offload"].start_ts
    assert start is not None
    win.start_ts[0] = start + 1.0  # inside the 5 s warm-up
    win.requests[1] = 3
    win.p95[2] = None
    path = infer_windows_path("modes.offload.latency_ms.p95", s)
    assert path == "modes.offload.windows.p95"
    assert window_values(s, path, min_requests=10) == win.p95[3:]
    assert infer_windows_path("modes.offload.error_rate", s) is None


def test_worst_judge_fails_on_one_bad_run_median_does_not() -> None:
    rules = parse_rules(
        '[rules.lost]\nkind = "absolute"\nmetric = "modes.offload.jobs.lost"\nop = "=="\nvalue = 0\njudge = "worst"\n'
        '[rules.lost_median]\nkind = "absolute"\nmetric = "modes.offload.jobs.lost"\nop = "=="\nvalue = 0\n',
        "r.toml",
    )
    for runs in ([summary(1), summary(2, lost=3), summary(3)], [summary(2, lost=3), summary(1), summary(3)]):
        results = {r.name: r for r in evaluate(rules, runs, [])}
        assert results["lost"].status == "FAIL"
        assert results["lost"].message == "offload lost 3 != 0 (worst of 3 runs) (rule lost)"
        assert results["lost_median"].status == "PASS"
    assert all(r.status == "PASS" for r in evaluate(rules, [summary(1), summary(3)], []))


def test_missing_metric_is_a_config_error_unless_optional() -> None:
    text = '[rules.b]\nkind = "absolute"\nmetric = "modes.batch.error_rate"\nop = "<="\nvalue = 0.01\n'
    with pytest.raises(RuleConfigError, match="rule b: metric modes.batch.error_rate is missing"):
        evaluate(parse_rules(text, "r.toml"), [summary(1)], [])
    results = evaluate(parse_rules(text + "optional = true\n", "r.toml"), [summary(1)], [])
    assert results[0].status == "SKIP"


def test_a_rule_reads_only_typed_summary_fields() -> None:
    undeclared = summary(1)
    assert undeclared.model.modes["offload"].model_extra is not None
    undeclared.model.modes["offload"].model_extra["queue_p95"] = 1.0  # present in the file, not in the model
    text = '[rules.q]\nkind = "absolute"\nmetric = "modes.offload.queue_p95"\nop = "<="\nvalue = 5\n'
    with pytest.raises(RuleConfigError, match="metric modes.offload.queue_p95 is missing"):
        evaluate(parse_rules(text, "r.toml"), [undeclared], [])


def test_relative_rule_without_windows_judges_on_tolerance_alone() -> None:
    rules = parse_rules(
        '[rules.rps]\nkind = "relative"\nmetric = "modes.offload.rps"\nmax_decrease_pct = 10\n', "r"
    )
    slow = summary(9)
    slow.model.modes["offload"].rps = 20.0  # baseline: 40 req/s
    result = evaluate(rules, [slow], [summary(1)])[0]
    assert result.status == "FAIL" and "tolerance only" in result.noise
    assert "offload rps 20 vs baseline 40: -50.0 % beyond -10 % (rule rps;" in result.message


def test_relative_rule_needs_a_baseline() -> None:
    rules, _ = load_rules(None)
    with pytest.raises(RuleConfigError, match="compares against a baseline"):
        evaluate(rules, [summary(1)], [])


def test_ratio_profile_needs_no_baseline_even_when_the_folder_has_only_a_readme(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "reports" / "baseline").mkdir(parents=True)
    (tmp_path / "reports" / "baseline" / "README.md").write_text("docs")
    monkeypatch.chdir(tmp_path)
    ci_rules, _ = load_rules(BENCH / "gates-ci.toml")
    assert _baseline(None, ci_rules)[0] == []
    default_rules, _ = load_rules(None)
    with pytest.raises(GateInputError, match="no summary files in baseline reports/baseline"):
        _baseline(None, default_rules)


def test_partial_runs_and_other_machines_are_warned_about() -> None:
    partial = summary(2)
    partial.run.status = "interrupted"
    partial.run.meta.cpu_count = 8
    warnings = _check_comparable([partial], [summary(1)], force=False)
    assert any("run synth-2 is interrupted, not complete" in w for w in warnings)
    assert any("different machines (synth-host/2 CPUs, synth-host/8 CPUs)" in w for w in warnings)
    assert _check_comparable([summary(3)], [summary(1)], force=False) == []


def test_relative_rule_with_too_few_windows_says_so() -> None:
    rules = parse_rules(
        '[rules.p95]\nkind = "relative"\nmetric = "modes.offload.latency_ms.p95"\nmax_increase_pct = 25\n',
        "r",
    )
    result = evaluate(rules, [summary(9, windows=3, shift_ms={"offload": 50.0})], [summary(1, windows=3)])[0]
    assert result.status == "FAIL" and result.noise == "n/a (windows 3/3, need 5 a side: tolerance only)"


def test_missing_candidate_or_baseline_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(GateInputError, match=r"^no summary at .*no-such-run \(no such run folder or file\)$"):
        load_summaries([tmp_path / "no-such-run"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        GateInputError, match=r"empty/summary.json \(run `offload-bench report .*empty` first\)$"
    ):
        load_summaries([tmp_path / "empty"])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text("[1, 2]")
    with pytest.raises(GateInputError, match="is not a summary.json"):
        load_summaries([tmp_path / "run"])
    with pytest.raises(GateInputError, match="baseline folder .* does not exist"):
        load_baseline(tmp_path / "nope")
