#!/usr/bin/python3
"""The web console in a real browser (Debian's chromium, chromium-driver, python3-selenium).

Starts `riposte-controller up` (controller and an enrolled local agent) in a temporary
directory with a playbook that captures a process's memory once a second responder approves,
then, as three people in three browser sessions:
  rex (responder) follows a link to an alert whose rule name is an XSS payload, is asked to sign
      in, sees the payload as text, starts the playbook from the alert's page, opens the approval
      it asks for and is told why he cannot decide (he asked for the run); signs out, and the
      cookie he held is refused by the API;
  vic (viewer) sees the approval but cannot decide, a forged POST without the CSRF token is
      refused, and the memory image is 403 for him;
  rita (responder) approves from the Approvals page with a reason; on the case page the capture
      succeeds and its evidence hash appears; she downloads it and its SHA-256 matches.
Also: the Content-Security-Policy header, the token in no storage and no URL, no unexpected
browser errors. Screenshots go to BUILD_DIR/console-screenshots/.

Usage: console_test.py BUILD_DIR   (exit 0 passed, 1 failed)
"""
import datetime
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import traceback

from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from harness import Controller, Failed, browser, check, sign_in, wait_for  # noqa: E402

BUILD = pathlib.Path(sys.argv[1]).resolve()
SHOTS = BUILD / "console-screenshots"
XSS = '<img src=x onerror=alert(1)><script>window.__xss=2</script>'

PLAYBOOK = """
name: capture-on-approval
version: "1"
description: captures the alert's process memory once a second responder approves
owner: soc@example.com
trigger:
  observable_types: [process]
inputs:
  pid: "{{ enrichment.process.pid }}"
  ticks: "{{ enrichment.process.start_ticks }}"
steps:
  - id: capture
    kind: action
    action: memory.capture
    mode: approve
    target: host
    parameters: {target: {pid: "{{ inputs.pid }}", start_ticks: "{{ inputs.ticks }}"}}
    timeout: 2m
  - {id: done, kind: case, status: contained}
"""

# Runs start when a person starts them (from the console), not when the alert arrives.
CONFIG = "playbooks:\n  auto_start: false\n"

# What a page's script gets when it fetches `path` with the session cookie (and `csrf`).
FETCH = """
const [path, method, csrf, done] = arguments;
const headers = {'Content-Type': 'application/json'};
if (csrf) headers['X-CSRF-Token'] = csrf;
fetch(path, {method, credentials: 'same-origin', headers,
             body: method === 'GET' ? undefined : JSON.stringify({reason: 'forged'})})
  .then(async r => {
    const bytes = new Uint8Array(await r.arrayBuffer());
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    done([r.status, Array.from(digest).map(b => b.toString(16).padStart(2, '0')).join('')]);
  }).catch(e => done([String(e), '']));
"""


def fetch(driver, path, method="GET", csrf=""):
    return driver.execute_async_script(FETCH, path, method, csrf)


def no_dialog(driver):
    try:
        driver.switch_to.alert
        return False
    except NoAlertPresentException:
        return True


def shot(driver, name):
    SHOTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def main():
    shutil.rmtree(SHOTS, ignore_errors=True)  # only this run's pictures
    work = pathlib.Path(tempfile.mkdtemp(prefix="riposte-console-"))
    (work / "playbooks").mkdir()
    (work / "playbooks" / "capture.yaml").write_text(PLAYBOOK)
    (work / "controller.yaml").write_text(CONFIG)
    victim = subprocess.Popen(["sleep", "600"])
    drivers = []
    controller = None
    try:
        controller = Controller(BUILD, work, work / "playbooks", work / "controller.yaml")
        server, admin, api = controller.server, controller.admin, controller.api
        tokens = {name: controller.operator(name, role)
                  for name, role in (("rex", "responder"), ("rita", "responder"), ("vic", "viewer"))}

        # The page itself: a strict policy, nothing inline.
        status, headers, body = api.call("GET", "/ui/")
        csp = headers.get("Content-Security-Policy", "")
        check(status == 200 and "default-src 'self'" in csp and "script-src 'self';" in csp
              and "unsafe-inline" not in csp, f"/ui/ is served with a strict CSP ({csp})")
        check(b"<script>" not in body and b'<script type="module" src="/ui/app.js">' in body,
              "index.html has no inline script")

        # An alert about a process on this host, its rule name an XSS payload, raised now: a
        # process that started after its alert is not the alert's process (docs/alerts.md).
        hostname = os.uname().nodename
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        alert = {"@timestamp": now, "kibana.alert.uuid": "console-alert-1",
                 "kibana.alert.rule.name": XSS, "kibana.alert.severity": "critical",
                 "host": {"name": hostname},
                 "process": {"pid": victim.pid, "executable": "/usr/bin/sleep"},
                 "related": {"ip": [12345]}}  # not an address: dropped with a note
        status, _, body = api.call("POST", "/api/v1/alerts?format=ecs", admin, alert)
        check(status == 201, f"alert submitted ({body[:200]!r})")
        alert_id = json.loads(body)["alerts"][0]["id"]
        wait_for(lambda: "enriched_at" in json.loads(api.call("GET", f"/api/v1/alerts/{alert_id}", admin)[2])
                 .get("enrichment", {}), "the alert is enriched", 60)

        # rex follows a link to the alert: sign-in first, then that page, the payload as text.
        rex = browser()
        drivers.append(rex)
        alert_url = f"{server}/ui/alerts/{alert_id}"
        rex.get(alert_url)
        shot(rex, "01-sign-in")
        sign_in(rex, tokens["rex"])
        check(rex.current_url == alert_url, "the deep link survives signing in")
        title = WebDriverWait(rex, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, "h1.rule-name")))
        check(title.text == XSS, "the alert's rule name is shown as the text it is")
        notes = WebDriverWait(rex, 20).until(EC.presence_of_element_located((By.ID, "alert-notes"))).text
        check("'related.ip'" in notes, f"the alert page shows intake's notes about dropped fields ({notes!r})")
        # rex starts the playbook from the alert's page; the run waits for approval.
        Select(rex.find_element(By.ID, "run-playbook")).select_by_value("capture-on-approval")
        check(not rex.find_element(By.ID, "run-simulate").is_selected(), "a responder's run is real by default")
        shot(rex, "02-alert-start-run")
        rex.find_element(By.ID, "run-start").click()
        WebDriverWait(rex, 20).until(EC.url_contains("/ui/runs/"))
        run_id = rex.current_url.rsplit("/", 1)[1]
        WebDriverWait(rex, 20).until(lambda d: "approval" in d.find_element(By.TAG_NAME, "main").text)
        shot(rex, "03-run-waiting")
        rex.find_element(By.CSS_SELECTOR, "header nav a[href='/ui/runs']").click()
        WebDriverWait(rex, 20).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, f"#runs a[href='/ui/runs/{run_id}']")))
        check("capture-on-approval" in rex.find_element(By.ID, "runs").text and
              not rex.find_elements(By.CSS_SELECTOR, "main .error"),
              "the Runs page lists the run, without an error box")

        def pending():
            s, _, b = api.call("GET", "/api/v1/approvals?state=pending", admin)
            items = [a for a in json.loads(b)["approvals"] if a["run_id"] == run_id] if s == 200 else []
            return items[0] if items else None
        approval = wait_for(pending, "the capture waits for approval", 30)
        approval_url = f"{server}/ui/approvals/{approval['id']}"
        WebDriverWait(rex, 20).until(EC.text_to_be_present_in_element((By.ID, "pending-count"), "1"))
        rex.find_element(By.CSS_SELECTOR, "header nav a[href='/ui/approvals']").click()
        WebDriverWait(rex, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#approvals a"))).click()
        WebDriverWait(rex, 20).until(EC.presence_of_element_located((By.ID, "impact")))
        check(rex.current_url == approval_url, "the approval has its own address")
        # The page fills in as its requests answer: wait for the target's process, not only for
        # the impact section to exist (a busy machine showed the section before the pid).
        try:
            WebDriverWait(rex, 30).until(lambda d: f"pid {victim.pid}" in d.find_element(By.TAG_NAME, "main").text)
        except Exception:
            pass  # the check below says what is missing
        body_text = rex.find_element(By.TAG_NAME, "main").text
        check("You asked for this run" in body_text, "rex is told why he cannot decide")
        check(not rex.find_element(By.ID, "approve").is_enabled(), "rex's approve button is disabled")
        check(hostname in body_text and "memory.capture" in body_text and f"pid {victim.pid}" in body_text,
              "the page says what would run, where, on which process")
        shot(rex, "04-approval-as-requester")
        stored = rex.execute_script(
            "return JSON.stringify([Object.assign({}, localStorage), Object.assign({}, sessionStorage)])")
        check(tokens["rex"] not in stored and stored == "[{},{}]", "no token or anything else in web storage")
        check(tokens["rex"] not in rex.current_url, "no token in the address")

        # The payload is text on every page that shows it, and never ran.
        rex.get(f"{server}/ui/alerts")
        WebDriverWait(rex, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#alerts td.rule-name")))
        check(rex.find_element(By.CSS_SELECTOR, "#alerts td.rule-name").text == XSS, "and in the alert list")
        check(no_dialog(rex) and rex.execute_script("return window.__xss === undefined"), "the payload never ran")
        check(len(rex.find_elements(By.CSS_SELECTOR, "main img")) == 0, "no element was made from it")
        shot(rex, "05-alerts-xss-as-text")

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
        check(not vic.find_element(By.ID, "approve").is_enabled(), "vic has no usable approve button")
        forged = fetch(vic, f"/api/v1/approvals/{approval['id']}/approve", "POST")
        check(forged[0] == 403, f"a POST without the CSRF token is refused ({forged[0]})")
        shot(vic, "06-approval-as-viewer")

        # rita decides from the Approvals page, with a reason.
        rita = browser()
        drivers.append(rita)
        rita.get(f"{server}/ui/")
        sign_in(rita, tokens["rita"])
        WebDriverWait(rita, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#approvals a")))
        shot(rita, "07-approvals-list")
        rita.find_element(By.CSS_SELECTOR, "#approvals a").click()
        reason = WebDriverWait(rita, 20).until(EC.element_to_be_clickable((By.ID, "decision-reason")))
        check(not rita.find_element(By.ID, "approve").is_enabled(), "approving needs a reason first")
        reason.send_keys("confirmed: keep its memory before anything else")
        rita.find_element(By.ID, "approve").click()
        WebDriverWait(rita, 20).until(
            lambda d: "This request is approved (by rita)" in d.find_element(By.TAG_NAME, "main").text)
        # The menu's count follows at once, not at the next 5 s poll.
        WebDriverWait(rita, 2).until(lambda d: not d.find_elements(By.ID, "pending-count"))
        check(True, "the pending count is gone right after the decision")
        shot(rita, "08-approved")
        # On the case page the capture succeeds and its evidence hash appears, without reloading.
        rita.find_element(By.PARTIAL_LINK_TEXT, approval["case_id"]).click()
        WebDriverWait(rita, 20).until(EC.presence_of_element_located((By.ID, "case-evidence")))
        sha = WebDriverWait(rita, 60).until(lambda d: re.search(
            r"\b[0-9a-f]{64}\b", d.find_element(By.ID, "case-evidence").text))
        sha = sha.group(0)
        check("memory.capture" in rita.find_element(By.ID, "case-actions").text
              and "succeeded" in rita.find_element(By.ID, "case-actions").text,
              "the approved capture shows as succeeded on the case page")
        check(len(rita.find_elements(By.CSS_SELECTOR, f"#case-evidence a[href='/api/v1/evidence/{sha}']")) == 1,
              "a responder gets a download link for the evidence")
        shot(rita, "09-case")
        s, _, b = api.call("GET", f"/api/v1/cases/{approval['case_id']}/report?format=json", admin)
        check(json.loads(b)["case"].get("console_link") == f"{server}/ui/cases/{approval['case_id']}",
              "the case report links the case's console page")
        status, digest = fetch(rita, f"/api/v1/evidence/{sha}")
        check(status == 200 and digest == sha, "rita downloads the memory image and its SHA-256 matches")
        check(victim.poll() is None, "the captured process is still running (a capture does not kill)")

        # The playbook's impact map, and a backtest over the alert, from the Playbooks page.
        rita.get(f"{server}/ui/playbooks")
        sections = WebDriverWait(rita, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "section details"))
        sections[0].click()
        impact = WebDriverWait(rita, 20).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "table.impact")))
        WebDriverWait(rita, 20).until(lambda d: "memory.capture" in impact.text)
        check("(no asset entry)" in impact.text and hostname in impact.text and "approve" in impact.text,
              "the impact map: the capture can touch this unmapped host, in approve")
        sections[1].click()
        rita.find_element(By.CSS_SELECTOR, "textarea.backtest-ids").send_keys(alert_id)
        rita.find_element(By.XPATH, "//button[text()='Backtest']").click()
        backtest = WebDriverWait(rita, 20).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "table.backtest")))
        check("yes" in backtest.text and "memory.capture" in backtest.text and "approve" in backtest.text,
              f"the backtest: the alert triggers the playbook, which would ask to capture ({backtest.text!r})")
        shot(rita, "10-playbooks")

        # vic sees the hash but cannot have the memory image.
        vic.get(f"{server}/ui/cases/{approval['case_id']}")
        WebDriverWait(vic, 20).until(EC.text_to_be_present_in_element((By.ID, "case-evidence"), sha))
        check(not vic.find_elements(By.CSS_SELECTOR, "#case-evidence a[href^='/api/v1/evidence/']"),
              "a viewer gets no download link")
        check(fetch(vic, f"/api/v1/evidence/{sha}")[0] == 403, "and the memory image is 403 for him")
        shot(vic, "11-case-as-viewer")

        # The console's own pages say nothing went wrong in the browser.
        # (Expected: the 401 before signing in and after signing out, vic's refused requests.)
        expected = re.compile(r"status of 401|/approve - .*status of 403|/api/v1/evidence/.* status of 403")
        for d in drivers:
            errors = [e for e in d.get_log("browser")
                      if e["level"] == "SEVERE" and not expected.search(e["message"])]
            check(not errors, f"no unexpected browser errors ({errors[:3]})")
        print("console_test: all passed")
        return 0
    except Exception as e:  # a check, or Selenium not finding what it waited for
        print(f"FAILED: {e if isinstance(e, Failed) else traceback.format_exc()}", flush=True)
        for n, d in enumerate(drivers):
            try:
                shot(d, f"failure-{n}")
            except Exception:
                pass
        if controller:
            print(controller.log()[-4000:])
        return 1
    finally:
        for d in drivers:
            d.quit()
        victim.kill()
        if controller:
            controller.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
