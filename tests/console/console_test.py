#!/usr/bin/python3
"""The web console in a real browser (Debian's chromium, chromium-driver, python3-selenium).

Starts `riposte-controller up` (controller and an enrolled local agent) in a temporary
directory with a playbook that kills a process on approval, then, as three people in three
browser sessions:
  rex (responder) submits an alert whose rule name is an XSS payload, opens the approval from its
      deep link, is asked to sign in, sees why he cannot decide (he asked for the run), and the
      payload rendered as text; signs out, and the cookie he held is refused by the API;
  vic (viewer) sees the approval but cannot decide, and a forged POST without the CSRF token
      is refused;
  rita (responder) approves with a reason; the process is killed.
Also: the Content-Security-Policy header, the token in no storage and no URL. Screenshots go to
BUILD_DIR/console-screenshots/.

Usage: console_test.py BUILD_DIR   (exit 0 passed, 1 failed)
"""
import json
import os
import pathlib
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

BUILD = pathlib.Path(sys.argv[1]).resolve()
SHOTS = BUILD / "console-screenshots"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'

PLAYBOOK = """
name: kill-on-approval
version: "1"
description: kills the alert's process once a second responder approves
owner: soc@example.com
trigger:
  observable_types: [process]
inputs:
  pid: "{{ enrichment.process.pid }}"
  ticks: "{{ enrichment.process.start_ticks }}"
steps:
  - id: kill
    kind: action
    action: process.kill
    mode: approve
    target: host
    parameters: {target: {pid: "{{ inputs.pid }}", start_ticks: "{{ inputs.ticks }}"}}
    timeout: 1m
  - {id: done, kind: case, status: contained}
"""


class Failed(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failed(what)
    print(f"ok: {what}", flush=True)


def wait_for(predicate, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise Failed(f"timed out: {what}")


class Api:
    def __init__(self, server, ca):
        self.server = server
        self.context = ssl.create_default_context(cafile=ca)
        self.context.check_hostname = False  # the certificate names the host, not 127.0.0.1:port

    def call(self, method, path, token=None, body=None, headers=None):
        request = urllib.request.Request(self.server + path, method=method)
        if token:
            request.add_header("Authorization", "Bearer " + token)
        for k, v in (headers or {}).items():
            request.add_header(k, v)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, data=data, context=self.context, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='riposte-chromium-')}"):
        options.add_argument(flag)
    # The controller's certificate chains to its own CA, which this throwaway profile does not
    # trust; the connection is still TLS, so the page is a secure context (Secure cookies).
    options.set_capability("acceptInsecureCerts", True)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def sign_in(driver, token):
    field = WebDriverWait(driver, 20).until(EC.presence_of_element_located((By.ID, "token")))
    field.send_keys(token)
    driver.find_element(By.ID, "sign-in").click()
    WebDriverWait(driver, 20).until(EC.presence_of_element_located((By.ID, "who")))


def shot(driver, name):
    SHOTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="riposte-console-"))
    (work / "playbooks").mkdir()
    (work / "playbooks" / "kill.yaml").write_text(PLAYBOOK)
    log = open(work / "up.log", "w")
    up = subprocess.Popen(
        [str(BUILD / "bin/riposte-controller"), "up", "--data-dir", str(work / "data"),
         "--agent-state-dir", str(work / "agent"), "--api-listen", "127.0.0.1:0",
         "--agent-listen", "127.0.0.1:0", "--playbooks", str(work / "playbooks")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    victim = subprocess.Popen(["sleep", "600"])
    drivers = []
    try:
        wait_for(lambda: "Riposte is up." in (work / "up.log").read_text(), "riposte up", 60)
        env = (work / "data" / "cli.env").read_text()
        server = re.search(r"RIPOSTE_SERVER=(\S+)", env).group(1)
        ca = re.search(r"RIPOSTE_CA=(\S+)", env).group(1)
        admin = re.search(r"RIPOSTE_TOKEN=(\S+)", env).group(1)
        api = Api(server, ca)
        tokens = {}
        for name, role in (("rex", "responder"), ("rita", "responder"), ("vic", "viewer")):
            status, _, body = api.call("POST", "/api/v1/operators", admin, {"name": name, "role": role})
            check(status == 201, f"operator {name} created")
            tokens[name] = json.loads(body)["token"]

        # The page itself: a strict policy, nothing inline.
        status, headers, body = api.call("GET", "/ui/")
        csp = headers.get("Content-Security-Policy", "")
        check(status == 200 and "default-src 'self'" in csp and "script-src 'self';" in csp
              and "unsafe-inline" not in csp, f"/ui/ is served with a strict CSP ({csp})")
        check(b"<script>" not in body and b"<script type=\"module\" src=\"/ui/app.js\">" in body,
              "index.html has no inline script")

        # rex submits the alert: the run acts for him, so he may not approve its kill.
        hostname = os.uname().nodename
        alert = {"@timestamp": "2026-11-29T10:00:00Z", "kibana.alert.uuid": "console-alert-1",
                 "kibana.alert.rule.name": XSS, "kibana.alert.severity": "critical",
                 "host": {"name": hostname},
                 "process": {"pid": victim.pid, "executable": "/usr/bin/sleep"}}
        status, _, body = api.call("POST", "/api/v1/alerts?format=ecs", tokens["rex"], alert)
        check(status == 201, f"alert submitted ({body[:200]!r})")
        alert_id = json.loads(body)["alerts"][0]["id"]

        def pending():
            s, _, b = api.call("GET", "/api/v1/approvals?state=pending", admin)
            items = json.loads(b)["approvals"] if s == 200 else []
            return items[0] if items else None
        approval = wait_for(pending, "the kill waits for approval", 60)
        approval_url = f"{server}/ui/approvals/{approval['id']}"

        # rex follows the link (as a notification carries it): sign-in first, then that page.
        rex = browser()
        drivers.append(rex)
        rex.get(approval_url)
        shot(rex, "01-sign-in")
        sign_in(rex, tokens["rex"])
        check(rex.current_url == approval_url, "the deep link survives signing in")
        WebDriverWait(rex, 20).until(EC.presence_of_element_located((By.ID, "impact")))
        body_text = rex.find_element(By.TAG_NAME, "main").text
        check("You asked for this run" in body_text, "rex is told why he cannot decide")
        check(not rex.find_element(By.ID, "approve").is_enabled(), "rex's approve button is disabled")
        check(hostname in body_text and "process.kill" in body_text, "the page says what would run where")
        check(rex.find_element(By.ID, "pending-count").text == "1", "the pending count shows 1")
        shot(rex, "02-approval-as-requester")
        stored = rex.execute_script(
            "return JSON.stringify([Object.assign({}, localStorage), Object.assign({}, sessionStorage)])")
        check(tokens["rex"] not in stored and stored == "[{},{}]", "no token or anything else in web storage")
        check(tokens["rex"] not in rex.current_url, "no token in the address")

        # The XSS rule name is text on every page that shows it.
        rex.get(f"{server}/ui/alerts/{alert_id}")
        title = WebDriverWait(rex, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, "h1.rule-name")))
        check(title.text == XSS, "the alert's rule name is shown as the text it is")
        rex.get(f"{server}/ui/alerts")
        WebDriverWait(rex, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#alerts td.rule-name")))
        check(rex.find_element(By.CSS_SELECTOR, "#alerts td.rule-name").text == XSS, "and in the alert list")
        check(rex.execute_script("return window.__xss === undefined"), "the payload never ran")
        check(len(rex.find_elements(By.CSS_SELECTOR, "main img")) == 0, "no element was made from it")
        shot(rex, "03-alerts-xss-as-text")

        # Sign-out revokes the session: the cookie rex's browser held opens nothing any more.
        cookie = rex.get_cookie("__Host-riposte_session")
        check(cookie and cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict",
              "the session cookie is HttpOnly, Secure, SameSite=Strict")
        check(rex.execute_script("return document.cookie") == "", "script cannot read the cookie")
        jar = {"Cookie": f"__Host-riposte_session={cookie['value']}"}
        check(api.call("GET", "/api/v1/session", headers=jar)[0] == 200, "the cookie works before sign-out")
        rex.find_element(By.ID, "sign-out").click()
        WebDriverWait(rex, 20).until(EC.presence_of_element_located((By.ID, "token")))
        check(api.call("GET", "/api/v1/session", headers=jar)[0] == 401, "the kept cookie is refused after sign-out")
        check(api.call("GET", "/api/v1/approvals", headers=jar)[0] == 401, "for every route")

        # vic (viewer) reads but cannot decide, not even by forging the request.
        vic = browser()
        drivers.append(vic)
        vic.get(approval_url)
        sign_in(vic, tokens["vic"])
        WebDriverWait(vic, 20).until(EC.presence_of_element_located((By.ID, "impact")))
        check("Deciding needs the responder role; you are viewer" in vic.find_element(By.TAG_NAME, "main").text,
              "vic is told a viewer cannot decide")
        forged = vic.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            f"fetch('/api/v1/approvals/{approval['id']}/approve', {{method: 'POST', credentials: 'same-origin',"
            " headers: {'Content-Type': 'application/json'}, body: JSON.stringify({reason: 'x'})})"
            ".then(r => done(r.status)).catch(e => done(String(e)));")
        check(forged == 403, f"a POST without the CSRF token is refused ({forged})")
        shot(vic, "04-approval-as-viewer")

        # rita decides, with a reason; the process is killed.
        rita = browser()
        drivers.append(rita)
        rita.get(f"{server}/ui/")
        sign_in(rita, tokens["rita"])
        WebDriverWait(rita, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#approvals a")))
        shot(rita, "05-approvals-list")
        rita.find_element(By.CSS_SELECTOR, "#approvals a").click()
        reason = WebDriverWait(rita, 20).until(EC.element_to_be_clickable((By.ID, "decision-reason")))
        check(not rita.find_element(By.ID, "approve").is_enabled(), "approving needs a reason first")
        reason.send_keys("confirmed: the alert's process must go")
        rita.find_element(By.ID, "approve").click()
        WebDriverWait(rita, 20).until(lambda d: "This request is approved (by rita)" in d.find_element(By.TAG_NAME, "main").text)
        wait_for(lambda: victim.poll() is not None, "the approved kill ends the process", 30)
        check(True, "the process the alert named was killed after rita's approval")
        shot(rita, "06-approved")
        # The case shows the run, the real action and the timeline.
        s, _, b = api.call("GET", f"/api/v1/approvals/{approval['id']}", admin)
        case_id = json.loads(b)["case_id"]
        rita.get(f"{server}/ui/cases/{case_id}")
        WebDriverWait(rita, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#case-actions td")))
        wait_for(lambda: "succeeded" in rita.find_element(By.ID, "case-actions").text or (rita.refresh() and False),
                 "the kill shows as succeeded on the case", 30)
        check(rita.find_element(By.ID, "case-title").text != "", "the case page opens")
        shot(rita, "07-case")
        # The console's own pages say nothing went wrong in the browser.
        # (Expected: the 401 before signing in and after signing out, vic's forged 403.)
        expected = re.compile(r"status of 401|/approve - .*status of 403")
        for d in drivers:
            errors = [e for e in d.get_log("browser")
                      if e["level"] == "SEVERE" and not expected.search(e["message"])]
            check(not errors, f"no unexpected browser errors ({errors[:3]})")
        print("console_test: all passed")
        return 0
    except Failed as e:
        print(f"FAILED: {e}", flush=True)
        for d in drivers:
            try:
                shot(d, f"failure-{drivers.index(d)}")
            except Exception:
                pass
        print((work / "up.log").read_text()[-4000:])
        return 1
    finally:
        for d in drivers:
            d.quit()
        victim.kill()
        os.killpg(up.pid, signal.SIGTERM)
        try:
            up.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
