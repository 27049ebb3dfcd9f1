"""Drives the Sinew dashboard in headless Chromium through the DevTools protocol (for Tests/SinewCLITests).

Checks, in order: the page and its socket are refused without the token; the page loads with it; its plots and 3D
view update; a screenshot is written; a mouse click on E-STOP puts the robot in its safe state (as the page sees it)
and a click on Recover brings it back to active. Prints one JSON object with what it saw; exits 1 on a failed check.

Chromium and this script end with the test that started them: this process asks the kernel for SIGTERM when its
parent dies (PR_SET_PDEATHSIG), Chromium gets SIGKILL when this process dies, and its process group is killed on
every way out.
"""
import argparse
import base64
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings

from websockets.sync.client import connect

# websockets 17 asks for a context manager around connect(); these connections are closed by hand.
warnings.filterwarnings("ignore", category=DeprecationWarning)

PR_SET_PDEATHSIG = 1


def die_with_parent(sig):
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


class DevTools:
    def __init__(self, url):
        self.socket = connect(url, max_size=64 << 20, open_timeout=20)
        self.next_id = 0

    def call(self, method, timeout=20, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.time() + timeout
        while True:
            message = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.time())))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.evaluate(expression):
                    return True
            except RuntimeError:
                pass
            time.sleep(0.1)
        return False

    def click(self, element_id):
        box = self.evaluate(
            f"(() => {{ const r = document.getElementById('{element_id}').getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)


def http_status(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--screenshot", required=True)
    args = parser.parse_args()
    die_with_parent(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = f"http://127.0.0.1:{args.port}"
    seen = {}
    failures = []

    def check(name, ok, detail=""):
        seen[name] = ok
        if not ok:
            failures.append(f"{name} {detail}".strip())

    check("page_refused_without_token", http_status(base + "/") == 401)
    check("page_refused_wrong_token", http_status(base + "/?token=" + "x" * 20) == 401)
    try:
        connect(f"ws://127.0.0.1:{args.port}/ws", open_timeout=10).close()
        check("socket_refused_without_token", False)
    except Exception:
        check("socket_refused_without_token", True)

    profile = tempfile.mkdtemp(prefix="sinew-chromium-")
    chromium = subprocess.Popen(
        [args.chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--disable-background-networking", "--disable-sync", "--mute-audio",
         "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}",
         "--window-size=1500,1400", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=lambda: die_with_parent(signal.SIGKILL))
    try:
        active_port = os.path.join(profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while not (os.path.exists(active_port) and open(active_port).read().count("\n") >= 1):
            if time.time() > deadline or chromium.poll() is not None:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        devtools_port = int(open(active_port).read().split("\n")[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{devtools_port}/json/list", timeout=10) as response:
            pages = [t for t in json.load(response) if t["type"] == "page"]
        page = DevTools(pages[0]["webSocketDebuggerUrl"])
        page.call("Page.enable")
        page.call("Runtime.enable")

        page.call("Page.navigate", url=base + "/")
        page.wait_for("document.readyState === 'complete'", 15)
        check("browser_refused_without_token", page.evaluate("!!document.getElementById('refused')"))

        page.call("Page.navigate", url=f"{base}/?token={args.token}")
        loaded = page.wait_for(
            "window.sinewDashboard && sinewDashboard.framesReceived > 5 && sinewDashboard.healthReceived > 0", 20)
        check("page_loads_with_token", loaded)
        check("token_gone_from_address", "token=" not in page.evaluate("location.href"))
        check("view_loaded", page.wait_for("sinewDashboard.viewLoaded", 15), str(page.evaluate("sinewDashboard.viewError")))
        samples = page.evaluate("sinewDashboard.plotSamples()")
        draws = page.evaluate("sinewDashboard.viewDraws()")
        time.sleep(1.5)
        samples_later = page.evaluate("sinewDashboard.plotSamples()")
        draws_later = page.evaluate("sinewDashboard.viewDraws()")
        seen["plot_samples"] = [samples, samples_later]
        check("plots_update", samples_later > samples + 5, f"{samples} -> {samples_later}")
        check("view_updates", draws_later > draws, f"{draws} -> {draws_later}")
        check("state_active_before", page.evaluate("sinewDashboard.state") == "active",
              page.evaluate("sinewDashboard.state"))
        shot = page.call("Page.captureScreenshot", format="png")
        with open(args.screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))

        t0 = time.time()
        page.click("estop")
        check("safe_after_estop", page.wait_for("sinewDashboard.state === 'safe'", 5))
        seen["estop_seen_s"] = round(time.time() - t0, 3)
        check("event_shown", page.wait_for("document.getElementById('event-log').textContent.includes('dashboard')", 5))
        with open(args.screenshot.replace(".png", "-safe.png"), "wb") as f:
            f.write(base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"]))
        page.click("recover")
        check("active_after_recover", page.wait_for("sinewDashboard.state === 'active'", 8))
        seen["acks"] = page.evaluate("sinewDashboard.acks")
        try:
            page.call("Browser.close", timeout=5)
        except Exception:
            pass
    except Exception as error:  # a failed step is a failed check, with what happened
        failures.append(f"error: {error}")
    finally:
        try:
            os.killpg(chromium.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        chromium.wait()
        shutil.rmtree(profile, ignore_errors=True)
    seen["failures"] = failures
    print(json.dumps(seen))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
