#!/usr/bin/python3
"""deploy/prometheus: scrape configs and rules pass promtool, the alert and
recording rules pass their promtool unit tests, and those unit tests pin every
threshold and `for:` (a rule nudged either way makes them fail)."""

import copy
import os
import re
import sys
import tempfile
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_support as ds  # noqa: E402

RULES = ds.src("deploy", "prometheus", "rules")
ALERTS = os.path.join(RULES, "corral-alerts.yml")
RECORDING = os.path.join(RULES, "corral-recording.yml")
UNIT_TESTS = ds.src("tests", "deploy", "prometheus")


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def alert_rules():
    return [r for g in load(ALERTS)["groups"] for r in g["rules"]]


def promtool(*args):
    return ds.run([ds.require_tool("promtool"), *args])


class PromtoolCheck(ds.TestCase):
    def assertPromtoolOk(self, *args):
        out = promtool(*args)
        self.assertEqual(out.returncode, 0, f"promtool {' '.join(args)}:\n{out.stdout}{out.stderr}")
        return out

    def test_compose_scrape_config(self):
        # Also checks the rule files it loads.
        out = self.assertPromtoolOk("check", "config", ds.src("deploy", "prometheus", "prometheus.yml"))
        self.assertIn("2 rule files found", out.stdout + out.stderr)

    def test_kubernetes_scrape_config(self):
        # Debian's promtool is built without Kubernetes service discovery, so
        # kubernetes_sd_configs is swapped for a static target; everything
        # else (relabeling, rule files, globals) is checked as written.
        config = load(ds.src("deploy", "prometheus", "prometheus-kubernetes.yml"))
        jobs = config["scrape_configs"]
        self.assertEqual([j["job_name"] for j in jobs], ["corrald"])
        self.assertEqual(jobs[0].pop("kubernetes_sd_configs"), [{"role": "pod"}])
        jobs[0]["static_configs"] = [{"targets": ["placeholder:9464"]}]
        config["rule_files"] = [os.path.join(ds.src("deploy", "prometheus"), f)
                                for f in config["rule_files"]]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "prometheus.yml")
            with open(path, "w") as f:
                yaml.safe_dump(config, f)
            self.assertPromtoolOk("check", "config", path)

    def test_rule_files(self):
        self.assertPromtoolOk("check", "rules", ALERTS, RECORDING)

    def test_prometheusrule_is_generated_from_the_rule_files(self):
        gen = ds.src("deploy", "k8s", "monitoring", "gen_prometheusrule.py")
        out = ds.run(["/usr/bin/python3", gen, "--check"])
        self.assertEqual(out.returncode, 0, out.stderr)
        resource = load(ds.src("deploy", "k8s", "monitoring", "prometheusrule.yaml"))
        self.assertEqual(resource["kind"], "PrometheusRule")
        self.assertEqual(resource["spec"]["groups"],
                         load(ALERTS)["groups"] + load(RECORDING)["groups"])
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            yaml.safe_dump({"groups": resource["spec"]["groups"]}, f)
            f.flush()
            self.assertPromtoolOk("check", "rules", f.name)


class RuleUnitTests(ds.TestCase):
    def test_alerts_fire_and_do_not_fire(self):
        out = promtool("test", "rules", os.path.join(UNIT_TESTS, "alerts_test.yml"))
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_recording_rules(self):
        out = promtool("test", "rules", os.path.join(UNIT_TESTS, "recording_test.yml"))
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_every_alert_is_unit_tested(self):
        with open(os.path.join(UNIT_TESTS, "alerts_test.yml")) as f:
            tested = set(re.findall(r"alertname: (\w+)", f.read()))
        self.assertEqual({r["alert"] for r in alert_rules()}, tested)


def _seconds(duration):
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


def _mutants():
    """(alert, description, rules document) triples, each one change away
    from the real rules: every `for:` halved and doubled, every non-zero
    `> N` threshold halved and doubled, every guard clause dropped."""
    doc = load(ALERTS)
    for gi, group in enumerate(doc["groups"]):
        for ri, rule in enumerate(group["rules"]):
            for factor in (0.5, 2):
                m = copy.deepcopy(doc)
                r = m["groups"][gi]["rules"][ri]
                r["for"] = f"{int(_seconds(rule['for']) * factor)}s"
                yield rule["alert"], f"for {rule['for']} -> {r['for']}", m
            thresholds = list(re.finditer(r"> (\d+(?:\.\d+)?)\b", rule["expr"]))
            for t in thresholds:
                if float(t.group(1)) == 0:
                    continue
                for factor in (0.5, 2):
                    m = copy.deepcopy(doc)
                    r = m["groups"][gi]["rules"][ri]
                    new = f"> {float(t.group(1)) * factor:g}"
                    r["expr"] = rule["expr"][:t.start()] + new + rule["expr"][t.end():]
                    yield rule["alert"], f"{t.group(0)} -> {new}", m
            # Guard clauses (traffic floors, "callers are missing"): dropping
            # one must let a quiet namespace fire.
            if "\nand on" in rule["expr"]:
                m = copy.deepcopy(doc)
                m["groups"][gi]["rules"][ri]["expr"] = rule["expr"].split("\nand on")[0]
                yield rule["alert"], "without its `and on (...)` guard", m


class ThresholdsArePinned(ds.TestCase):
    def test_nudged_rules_fail_the_unit_tests(self):
        with open(os.path.join(UNIT_TESTS, "alerts_test.yml")) as f:
            tests = yaml.safe_load(f)
        survivors, count = [], 0
        with tempfile.TemporaryDirectory() as d:
            rules_path = os.path.join(d, "rules.yml")
            tests["rule_files"] = [rules_path]

            def tests_of(alert):
                # Only the test groups about `alert`: a mutant can only break
                # those, and promtool runs much faster on fewer groups.
                path = os.path.join(d, f"{alert}.yml")
                if not os.path.exists(path):
                    mine = dict(tests, tests=[
                        t for t in tests["tests"]
                        if any(a["alertname"] == alert for a in t.get("alert_rule_test", []))])
                    with open(path, "w") as f:
                        yaml.safe_dump(mine, f)
                return path

            # Control: the unmodified rules pass from the rewritten test files.
            with open(rules_path, "w") as f:
                yaml.safe_dump(load(ALERTS), f)
            for rule in alert_rules():
                out = promtool("test", "rules", tests_of(rule["alert"]))
                self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            for alert, description, mutant in _mutants():
                count += 1
                with open(rules_path, "w") as f:
                    yaml.safe_dump(mutant, f)
                if promtool("test", "rules", tests_of(alert)).returncode == 0:
                    survivors.append(f"{alert}: {description}")
        self.assertGreaterEqual(count, 20)
        self.assertEqual(survivors, [], "alerts_test.yml still passes with these changes; "
                         "add series just either side of the threshold / for:")


class RuleHygiene(ds.TestCase):
    def test_alerts_carry_severity_summary_description_runbook(self):
        for rule in alert_rules():
            with self.subTest(alert=rule["alert"]):
                self.assertIn(rule["labels"]["severity"], {"critical", "warning"})
                for key in ("summary", "description", "runbook"):
                    self.assertTrue(rule["annotations"].get(key, "").strip(), key)
                self.assertIn("for", rule)

    def test_rules_use_only_contract_metrics(self):
        for path in (ALERTS, RECORDING):
            for group in load(path)["groups"]:
                for rule in group["rules"]:
                    with self.subTest(rule=rule.get("alert") or rule.get("record")):
                        self.assertLessEqual(ds.metric_names(rule["expr"]), ds.KNOWN_METRICS)

    def test_recording_rule_names_follow_convention(self):
        for group in load(RECORDING)["groups"]:
            for rule in group["rules"]:
                self.assertRegex(rule["record"], r"^[a-z_]+:corral_[a-z_0-9]+:[a-z_0-9]+$")


if __name__ == "__main__":
    unittest.main(verbosity=2)
