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
import subprocess
import sys
import tempfile

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from harness import Controller, Failed, browser, check, sign_in, wait_for  # noqa: E402

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


def shot(driver, name):
    SHOTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="riposte-console-"))
    (work / "playbooks").mkdir()
    (work / "playbooks" / "kill.yaml").write_text(PLAYBOOK)
    victim = subprocess.Popen(["sleep", "600"])
    drivers = []
    controller = None
    try:
        controller = Controller(BUILD, work, work / "playbooks")
        server, admin, api = controller.server, controller.admin, controller.api
        tokens = {name: controller.operator(name, role)
                  for name, role in (("rex", "responder"), ("rita", "responder"), ("vic", "viewer"))}

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
