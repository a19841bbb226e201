#!/usr/bin/python3
"""deploy/grafana/corral.json: parses, every PromQL expression in it is
accepted by promtool, names only contract metrics, and -- against a real
Prometheus scraping a real corrald after a real stampede -- every query
succeeds, the core panels show data, and the recording rules compute the
stampede collapse the bench produced."""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_support as ds  # noqa: E402

DASHBOARD = ds.src("deploy", "grafana", "corral.json")

# Grafana's variables, as the dashboard's defaults ("All") expand them.
VARIABLES = {"$__rate_interval": "30s", "$__interval": "15s", "$__range": "5m",
             "$namespace": ".*", "$instance": ".*"}

# Panels that must show data right after one stampede on a healthy fleet.
# (Breaker transitions stay empty until a breaker changes state; duplicates
# and timeouts stay empty when none happened.)
MUST_HAVE_DATA = {
    "Callers served per compute", "Stampede collapse", "Waiting now", "Replicas up", "Store",
    "Breaker state", "In the current state for", "Time open",
    "Hit ratio by stage", "Computes vs duplicate computes", "Lookups by stage and result",
    "Lock wait percentiles", "Lock wait distribution", "Lock acquisitions by outcome",
    "Waiters by namespace", "Store latency", "Store up by replica", "RPCs by method and code",
    "RPC latency p99",
}


def load():
    with open(DASHBOARD) as f:
        return json.load(f)


def panels(dashboard):
    for p in dashboard["panels"]:
        yield p
        yield from p.get("panels", [])  # collapsed rows nest their panels


def expressions(dashboard):
    """(panel title, PromQL with Grafana variables expanded)."""
    for p in panels(dashboard):
        for t in p.get("targets", []):
            expr = t["expr"]
            for var, value in VARIABLES.items():
                expr = expr.replace(var, value)
            yield p["title"], expr


class DashboardShape(ds.TestCase):
    def test_parses_and_is_importable(self):
        d = load()
        self.assertEqual(d["uid"], "corral-overview")
        self.assertTrue(d["title"])
        ids = [p["id"] for p in panels(d)]
        self.assertEqual(len(ids), len(set(ids)), "panel ids must be unique")
        names = {v["name"] for v in d["templating"]["list"]}
        self.assertEqual(names, {"datasource", "namespace", "instance"})
        for p in panels(d):
            with self.subTest(panel=p["title"]):
                g = p["gridPos"]
                self.assertLessEqual(g["x"] + g["w"], 24)
                if p["type"] != "row":
                    self.assertEqual(p["datasource"]["uid"], "${datasource}")
                    self.assertTrue(p["targets"])
                    self.assertTrue(p.get("description"), "operators hover for the meaning")

    def test_covers_what_the_issue_asks_for(self):
        titles = {p["title"] for p in panels(load())}
        for wanted in ("Hit ratio by stage", "Lock wait percentiles",
                       "Computes vs duplicate computes", "Breaker state", "Waiters by namespace",
                       "Store latency", "Refreshes started and how they ended",
                       "Stale values served and remembered failures"):
            self.assertIn(wanted, titles)

    def test_no_unexpanded_variables(self):
        for title, expr in expressions(load()):
            self.assertNotIn("$", expr, f"{title}: unknown Grafana variable")

    def test_uses_only_contract_metrics(self):
        d = load()
        for title, expr in expressions(d):
            with self.subTest(panel=title):
                self.assertLessEqual(ds.metric_names(expr), ds.KNOWN_METRICS)
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                self.assertLessEqual(ds.metric_names(v["definition"]), ds.KNOWN_METRICS)


class DashboardPromQL(ds.TestCase):
    def test_promtool_accepts_every_expression(self):
        # promtool parses (and type-checks) rule expressions: wrap each one.
        rules = [{"record": f"dashboard:expr_{i}:check", "expr": expr}
                 for i, (_, expr) in enumerate(expressions(load()))]
        self.assertGreaterEqual(len(rules), 20)
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
            f.flush()
            out = ds.run([ds.require_tool("promtool"), "check", "rules", f.name])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)


def query(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:  # 400/422 carry the PromQL error
        return json.load(e)


class DashboardAgainstRealPrometheus(ds.TestCase):
    def test_queries_and_recording_rules_on_a_real_stampede(self):
        procs = self.processes()
        redis = procs.redis()
        _, grpc_port, metrics_port = procs.corrald(
            ["--listen_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
             f"--redis=redis://127.0.0.1:{redis}", "--log_level=warning"])

        # Prometheus with corral's rules, scraping every second. The recording
        # group's 30 s interval is dropped so the rules run on that second too.
        prom_port = ds.free_port()
        rules_dir = os.path.join(procs.dir, "rules")
        os.mkdir(rules_dir)
        rule_count = 0
        for name in ("corral-alerts.yml", "corral-recording.yml"):
            with open(ds.src("deploy", "prometheus", "rules", name)) as f:
                doc = yaml.safe_load(f)
            for g in doc["groups"]:
                g.pop("interval", None)
                rule_count += len(g["rules"])
            with open(os.path.join(rules_dir, name), "w") as f:
                yaml.safe_dump(doc, f)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [os.path.join(rules_dir, "*.yml")],
            "scrape_configs": [{"job_name": "corrald", "static_configs": [
                {"targets": [f"127.0.0.1:{metrics_port}"]}]}],
        }
        config_path = os.path.join(procs.dir, "prometheus.yml")
        with open(config_path, "w") as f:
            yaml.safe_dump(config, f)
        with open(os.path.join(procs.dir, "prometheus.log"), "w") as log:
            prom = subprocess.Popen(
                [ds.require_tool("prometheus"), f"--config.file={config_path}",
                 f"--storage.tsdb.path={os.path.join(procs.dir, 'tsdb')}",
                 f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT)
        procs.procs.append(prom)

        def wait_for(expr, what, timeout=30):
            deadline = time.monotonic() + timeout
            result = None
            while time.monotonic() < deadline:
                if prom.poll() is not None:
                    self.fail(f"prometheus exited:\n{open(os.path.join(procs.dir, 'prometheus.log')).read()}")
                try:
                    result = query(prom_port, expr)
                    if result.get("status") == "success" and result["data"]["result"]:
                        return result["data"]["result"]
                except OSError:
                    pass
                time.sleep(0.25)
            self.fail(f"{what}: {expr} gave {result}")

        wait_for('up{job="corrald"} == 1', "corrald scraped")

        # Two stampedes of 100 callers on one cold key each, in one namespace:
        # the first creates the series, the second moves the counters while
        # Prometheus watches (rate() needs an increase it has seen).
        def bench():
            # 500 ms computes: long enough that all 100 callers arrive while
            # it runs, even on a loaded machine.
            out = ds.run([ds.BENCH, f"--targets=127.0.0.1:{grpc_port}", "--callers=100",
                          "--keys=1", "--compute_ms=500", "--ns=dash"])
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertIn("computes=1 ", out.stdout)
        bench()
        time.sleep(2.5)
        bench()

        # Recording rules on real data: 100 callers, 1 compute -> 100 callers
        # served per compute, all of them through the stampede. (A caller
        # that arrived after the fill would be a plain hit in a series rate()
        # sees born, hence the lower bound rather than exactly 100.)
        for record in ("namespace:corral_stampede_collapse:ratio_rate5m",
                       "namespace:corral_callers_served_per_compute:ratio_rate5m"):
            result = wait_for(f'{record}{{namespace="dash"}}', record)
            value = float(result[0]["value"][1])
            self.assertTrue(90 <= value <= 100.5, f"{record} = {value}, expected ~100")

        # Let the panels' 30 s windows see the second stampede from both sides.
        time.sleep(2)
        failed, with_data = [], set()
        for title, expr in expressions(load()):
            result = query(prom_port, expr)
            if result.get("status") != "success":
                failed.append(f"{title}: {result.get('error')} in {expr}")
            elif result["data"]["result"]:
                with_data.add(title)
        self.assertEqual(failed, [])
        self.assertEqual(sorted(MUST_HAVE_DATA - with_data), [],
                         "these panels would be empty after a real stampede")

        # Every rule evaluates cleanly against real series.
        with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/rules", timeout=10) as r:
            groups = json.load(r)["data"]["groups"]
        bad = [(rule["name"], rule.get("lastError")) for g in groups for rule in g["rules"]
               if rule.get("health") not in ("ok", "unknown") or rule.get("lastError")]
        self.assertEqual(bad, [])
        self.assertEqual(sum(len(g["rules"]) for g in groups), rule_count)


if __name__ == "__main__":
    unittest.main(verbosity=2)
