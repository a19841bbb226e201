#!/usr/bin/python3
"""docs/OPERATIONS.md stays true: its configuration reference is the one
generated from config.proto, it documents every corrald flag, every metric
of the contract and every alert, and the measurement script it quotes
computes percentiles the way Prometheus does."""

import importlib.util
import os
import re
import sys
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_support as ds  # noqa: E402

DOC = ds.src("docs", "OPERATIONS.md")


def doc():
    with open(DOC) as f:
        return f.read()


class OperationsDoc(ds.TestCase):
    def test_config_reference_is_generated_from_config_proto(self):
        ds.require_tool("protoc")
        out = ds.run(["/usr/bin/python3", ds.src("docs", "gen_config_reference.py"), "--check"])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_config_reference_covers_every_field(self):
        # Independent of the generator: every field name in config.proto's
        # messages appears in the reference tables.
        with open(ds.src("proto", "corral", "v1", "config.proto")) as f:
            proto = f.read()
        fields = set(re.findall(r"^\s+(?:optional |repeated )?[\w.]+ (\w+) = \d+;", proto, re.M))
        reference = doc().split("BEGIN config-reference")[1].split("END config-reference")[0]
        documented = set(re.findall(r"^\| `(\w+)` \|", reference, re.M))
        self.assertTrue(fields)
        self.assertEqual(sorted(fields - documented), [])

    def test_every_flag_is_documented(self):
        text = doc()
        for flag in ds.corrald_flags():
            self.assertIn(f"`--{flag}`", text)

    def test_every_contract_metric_is_documented(self):
        table = set(re.findall(r"^\| `(corral_\w+)` \|", doc(), re.M))
        base = ds.COUNTERS_AND_GAUGES | ds.HISTOGRAMS
        self.assertEqual(table, base, "docs/OPERATIONS.md's metric table and "
                         "tests/deploy/deploy_support.py's contract differ")

    def test_every_alert_has_a_section(self):
        with open(ds.src("deploy", "prometheus", "rules", "corral-alerts.yml")) as f:
            alerts = [r["alert"] for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
        sections = re.findall(r"^### (\w+)$", doc().split("## Alerts")[1], re.M)
        self.assertEqual(sections, alerts)

    def test_measurement_script_quantiles_match_prometheus(self):
        spec = importlib.util.spec_from_file_location(
            "measure", ds.src("docs", "measure_lock_wait.py"))
        measure = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(measure)
        # The same buckets as tests/deploy/prometheus/recording_test.yml,
        # where promtool computes 0.25 and 0.45.
        buckets = [(0.1, 0), (0.25, 50), (0.5, 100), (float("inf"), 100)]
        self.assertAlmostEqual(measure.histogram_quantile(0.5, buckets), 0.25)
        self.assertAlmostEqual(measure.histogram_quantile(0.9, buckets), 0.45)
        self.assertEqual(measure.seconds("269.5ms"), 0.2695)
        self.assertAlmostEqual(measure.seconds("1m2.5s"), 62.5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
