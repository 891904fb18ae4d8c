#!/usr/bin/python3
"""How fast the console's lists are with a SOC's worth of data (part of the `bench` target).

Fills a controller (`riposte-controller up`) through its API with 10,000 alerts on 1,000 hosts
(1,000 cases: a host's alerts join one case) and 1,000 enrolled agents (real CSRs, real
enrollment), then measures, in Debian's Chromium, the time from navigation to a page showing its
rows: the first and the last page of alerts, cases and agents. Also the API's own answer time for
the same pages. Prints one line per page: median and worst of RUNS loads, in milliseconds.

Usage: console_bench.py BUILD_DIR [RUNS]   Environment: RIPOSTE_CONSOLE_BENCH_SCALE (default 1.0)
scales the numbers (0.1: 1,000 alerts, 100 cases, 100 agents) for a quick run.
"""
import json
import pathlib
import shutil
import statistics
import sys
import tempfile
import os
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from harness import Controller, browser, check, sign_in, wait_for  # noqa: E402

BUILD = pathlib.Path(sys.argv[1]).resolve()
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
SCALE = float(os.environ.get("RIPOSTE_CONSOLE_BENCH_SCALE", "1.0"))
HOSTS = max(1, int(1000 * SCALE))
ALERTS_PER_HOST = 10
AGENTS = max(1, int(1000 * SCALE))
PAGE = 50


def progress(text):
    print(f"console_bench: {text}", flush=True)


def enroll_agents(controller, count):
    status, _, body = controller.api.call("POST", "/api/v1/enrollment-tokens", controller.admin,
                                          {"uses": count, "ttl": "1h"})
    check(status == 201, "an enrollment token for the agents")
    token = json.loads(body)["token"]
    key = ec.generate_private_key(ec.SECP256R1())  # one key: the CSRs differ by name
    for i in range(count):
        name = f"bench-agent-{i:05d}"
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .sign(key, hashes.SHA256()))
        pem = csr.public_bytes(serialization.Encoding.PEM).decode()
        status, _, body = controller.api.call("POST", "/api/v1/enroll",
                                              body={"token": token, "csr_pem": pem, "hostname": name})
        if status != 201:
            raise SystemExit(f"enrollment {i} failed: {status} {body[:200]!r}")
        if (i + 1) % 250 == 0:
            progress(f"enrolled {i + 1}/{count} agents")


def submit_alerts(controller):
    batch = []
    sent = 0
    for h in range(HOSTS):
        for n in range(ALERTS_PER_HOST):
            batch.append({"@timestamp": "2026-11-29T10:00:00Z",
                          "kibana.alert.uuid": f"bench-{h:05d}-{n:02d}",
                          "kibana.alert.rule.name": f"Bench rule {n}",
                          "kibana.alert.severity": ["low", "medium", "high", "critical"][n % 4],
                          "host": {"name": f"bench-host-{h:05d}"}})
            if len(batch) == 1000:
                status, _, body = controller.api.call("POST", "/api/v1/alerts?format=ecs",
                                                      controller.admin, batch)
                if status != 201:
                    raise SystemExit(f"alerts refused: {status} {body[:200]!r}")
                sent += len(batch)
                batch = []
                progress(f"submitted {sent}/{HOSTS * ALERTS_PER_HOST} alerts")
    if batch:
        status, _, _ = controller.api.call("POST", "/api/v1/alerts?format=ecs", controller.admin, batch)
        check(status == 201, f"{len(batch)} alerts stored")


def measure(driver, url, table, rows):
    """Milliseconds from navigation until `table` shows `rows` rows."""
    start = time.monotonic()
    driver.get(url)
    WebDriverWait(driver, 30, poll_frequency=0.01).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")) == rows)
    return (time.monotonic() - start) * 1000


def api_ms(controller, path):
    start = time.monotonic()
    status, _, _ = controller.api.call("GET", path, controller.admin)
    if status != 200:
        raise SystemExit(f"GET {path} answered {status}")
    return (time.monotonic() - start) * 1000


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="riposte-console-bench-"))
    controller = Controller(BUILD, work)
    driver = None
    try:
        enroll_agents(controller, AGENTS)
        submit_alerts(controller)
        alerts = HOSTS * ALERTS_PER_HOST
        # Cases are opened as the pipeline works through the alerts: wait for all of them.
        wait_for(lambda: json.loads(controller.api.call(
            "GET", f"/api/v1/cases?limit=1&offset={HOSTS - 1}", controller.admin)[2])["cases"],
            f"{HOSTS} cases", 300)
        total_agents = AGENTS + 1  # and the local agent `up` enrolled
        last = lambda n: ((n - 1) // PAGE) * PAGE  # noqa: E731
        pages = [
            ("alerts, newest", "/ui/alerts", "alerts", PAGE, f"/api/v1/alerts?limit={PAGE}"),
            ("alerts, last page", f"/ui/alerts?offset={last(alerts)}", "alerts",
             alerts - last(alerts), f"/api/v1/alerts?limit={PAGE}&offset={last(alerts)}"),
            ("cases, newest", "/ui/cases", "cases", PAGE, f"/api/v1/cases?limit={PAGE}"),
            ("cases, last page", f"/ui/cases?offset={last(HOSTS)}", "cases", HOSTS - last(HOSTS),
             f"/api/v1/cases?limit={PAGE}&offset={last(HOSTS)}"),
            ("agents, first page", "/ui/agents", "agents", PAGE, f"/api/v1/agents?limit={PAGE}"),
            ("agents, last page", f"/ui/agents?offset={last(total_agents)}", "agents",
             total_agents - last(total_agents),
             f"/api/v1/agents?limit={PAGE}&offset={last(total_agents)}"),
        ]
        driver = browser()
        driver.get(controller.server + "/ui/")
        sign_in(driver, controller.admin)
        progress(f"{alerts} alerts, {HOSTS} cases, {total_agents} agents; {RUNS} loads per page")
        print(f"{'page':<22} {'browser median ms':>18} {'browser max ms':>15} {'API median ms':>14}")
        worst = 0.0
        for name, path, table, rows, api_path in pages:
            times = [measure(driver, controller.server + path, table, rows) for _ in range(RUNS)]
            api_times = [api_ms(controller, api_path) for _ in range(RUNS)]
            worst = max(worst, max(times))
            print(f"{name:<22} {statistics.median(times):>18.0f} {max(times):>15.0f} "
                  f"{statistics.median(api_times):>14.1f}", flush=True)
        print(f"console_bench: slowest page load {worst:.0f} ms (goal: under 1000 ms)")
        return 0 if worst < 1000 else 1
    finally:
        if driver:
            driver.quit()
        controller.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
