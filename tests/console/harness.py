"""What the console's browser test and benchmark share: a controller started with
`riposte-controller up` in a temporary directory, an HTTPS client of its API that keeps its
connection (the API limits new connections per address), and Chromium driven by Selenium."""
import http.client
import json
import os
import pathlib
import re
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.parse

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


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
    """The controller's API over one kept-alive TLS connection, verified against its CA."""

    def __init__(self, server, ca):
        self.server = server
        url = urllib.parse.urlsplit(server)
        self.host, self.port = url.hostname, url.port
        self.context = ssl.create_default_context(cafile=ca)
        self.context.check_hostname = False  # the certificate names the host, not 127.0.0.1
        self.connection = None

    def call(self, method, path, token=None, body=None, headers=None, raw=None):
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = "Bearer " + token
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPSConnection(self.host, self.port,
                                                              context=self.context, timeout=60)
            try:
                self.connection.request(method, path, body=data, headers=all_headers)
                response = self.connection.getresponse()
                payload = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.connection.close()
                    self.connection = None
                return response.status, dict(response.getheaders()), payload
            except (http.client.HTTPException, OSError):
                self.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


class Controller:
    """`riposte-controller up` (controller and an enrolled local agent) in `work`."""

    def __init__(self, build, work, playbooks=None, config=None):
        self.work = pathlib.Path(work)
        command = [str(pathlib.Path(build) / "bin/riposte-controller"), "up",
                   "--data-dir", str(self.work / "data"), "--agent-state-dir", str(self.work / "agent"),
                   "--api-listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"]
        if playbooks:
            command += ["--playbooks", str(playbooks)]
        if config:
            command += ["--config", str(config)]
        self.log_path = self.work / "up.log"
        self.process = subprocess.Popen(command, stdout=open(self.log_path, "w"),
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: "Riposte is up." in self.log(), "riposte-controller up", 60)
        env = (self.work / "data" / "cli.env").read_text()
        self.server = re.search(r"RIPOSTE_SERVER=(\S+)", env).group(1)
        self.ca = re.search(r"RIPOSTE_CA=(\S+)", env).group(1)
        self.admin = re.search(r"RIPOSTE_TOKEN=(\S+)", env).group(1)
        self.api = Api(self.server, self.ca)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def operator(self, name, role):
        status, _, body = self.api.call("POST", "/api/v1/operators", self.admin,
                                        {"name": name, "role": role})
        check(status == 201, f"operator {name} ({role}) created")
        return json.loads(body)["token"]

    def stop(self):
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


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
