#!/usr/bin/python3
"""The web page of `musicgen serve` in headless Chromium (Debian's chromium, chromium-driver and
python3-selenium): open /, generate on the tiny fixture, wait until the <audio> element holds the
requested duration, check the download link's bytes are that WAV, save docs/images/server.png.

Usage: test_web.py MUSICGEN_BINARY FIXTURE_DIR [SCREENSHOT.png]
Exit 0: passed; 77: SKIPPED (chromium or selenium missing; a failure instead when the environment
sets MUSICGEN_REQUIRE_CHROMIUM=1); anything else: failed. Loopback only; every wait is bounded.
"""
import base64
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

DURATION = 1.5
SKIP = 77


def skip(reason):
    if os.environ.get("MUSICGEN_REQUIRE_CHROMIUM") == "1":
        print(f"FAILED: {reason} (MUSICGEN_REQUIRE_CHROMIUM=1)")
        sys.exit(1)
    print(f"SKIPPED: {reason}")
    sys.exit(SKIP)


def main():
    binary, fixture = sys.argv[1], sys.argv[2]
    shot = sys.argv[3] if len(sys.argv) > 3 else None
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError as e:
        skip(f"python3-selenium is not installed ({e})")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not chromium or not os.path.exists(driver_path):
        skip("chromium or chromium-driver is not installed")

    server = subprocess.Popen([binary, "serve", "--model", fixture, "--port", "0", "--threads", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    driver = None
    try:
        line = ""
        deadline = time.time() + 30
        while time.time() < deadline and "listening on" not in line:
            line = server.stdout.readline()
            if not line and server.poll() is not None:
                raise SystemExit(f"FAILED: the server exited: {server.stderr.read()}")
        if "listening on" not in line:
            raise SystemExit("FAILED: the server did not print its address in 30 s")
        url = line.split("listening on", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:"), url

        opts = Options()
        opts.binary_location = chromium
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--window-size=900,1400", "--autoplay-policy=no-user-gesture-required"):
            opts.add_argument(a)
        try:
            driver = webdriver.Chrome(service=Service(driver_path), options=opts)
        except Exception as e:  # a broken browser install is a skip, unless CI requires it
            skip(f"chromium did not start: {str(e).splitlines()[0]}")
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(30)
        driver.get(url + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) > 0)
        assert driver.find_element(By.CSS_SELECTOR, "#model option").get_attribute("value") == \
            os.path.basename(os.path.normpath(fixture))
        prompt = driver.find_element(By.ID, "prompt")
        prompt.clear()
        prompt.send_keys("lo-fi hip hop beat with a mellow piano")
        dur = driver.find_element(By.ID, "duration")
        dur.clear()
        dur.send_keys(str(DURATION))
        driver.find_element(By.TAG_NAME, "summary").click()
        seed = driver.find_element(By.ID, "seed")
        seed.clear()
        seed.send_keys("42")
        driver.find_element(By.ID, "go").click()
        # The audio element holds the full duration.
        got = wait.until(lambda d: d.execute_script(
            "const a = document.getElementById('player');"
            "return a.src && isFinite(a.duration) && a.duration > 0 ? a.duration : null;"))
        if abs(got - DURATION) > 1.0 / 50:
            raise SystemExit(f"FAILED: the audio element holds {got} s, expected {DURATION} s")
        status = driver.find_element(By.ID, "status").text
        assert status.startswith("Done"), status
        # The download link's bytes: a WAV of the requested length.
        b64 = driver.execute_async_script(
            "const done = arguments[0];"
            "fetch(document.getElementById('download').href).then(r => r.arrayBuffer()).then(b => {"
            "  let s = ''; const u = new Uint8Array(b);"
            "  for (let i = 0; i < u.length; i++) s += String.fromCharCode(u[i]);"
            "  done(btoa(s)); });")
        wav = base64.b64decode(b64)
        if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
            raise SystemExit("FAILED: the download is not a WAV file")
        channels, rate = struct.unpack("<HI", wav[22:28])
        bits = struct.unpack("<H", wav[34:36])[0]
        data = wav.find(b"data")
        size = struct.unpack("<I", wav[data + 4:data + 8])[0]
        seconds = size / (channels * bits // 8) / rate
        if abs(seconds - DURATION) > 1.0 / 50:
            raise SystemExit(f"FAILED: the download holds {seconds} s, expected {DURATION} s")
        if driver.find_element(By.ID, "download").get_attribute("download") != "musicgen.wav":
            raise SystemExit("FAILED: the download link has no file name")
        # The waveform was drawn (some non-background pixels).
        drawn = driver.execute_script(
            "const c = document.getElementById('wave'); const d = c.getContext('2d')"
            ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
            "for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;")
        if drawn < 100:
            raise SystemExit("FAILED: no waveform drawn")
        # Streamed: played while it arrives, then the same length in the player.
        driver.execute_script("document.getElementById('player').removeAttribute('src');")
        driver.find_element(By.ID, "stream").click()
        driver.find_element(By.ID, "go").click()
        got2 = wait.until(lambda d: d.execute_script(
            "const a = document.getElementById('player');"
            "return a.src && isFinite(a.duration) && a.duration > 0 && "
            "document.getElementById('status').textContent.startsWith('Done') ? a.duration : null;"))
        if abs(got2 - DURATION) > 1.0 / 50:
            raise SystemExit(f"FAILED: streamed: the audio element holds {got2} s, expected {DURATION} s")
        driver.find_element(By.ID, "stream").click()
        if shot:
            driver.save_screenshot(shot)
        print(f"PASSED: {got:.2f} s in the player, {len(wav)} byte WAV download, waveform drawn; "
              f"streamed: {got2:.2f} s")
    finally:
        if driver is not None:
            driver.quit()
        server.send_signal(signal.SIGTERM)
        try:
            rc = server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
            raise SystemExit("FAILED: the server did not stop within 40 s of SIGTERM")
        if rc != 0:
            raise SystemExit(f"FAILED: the server exited {rc} on SIGTERM")


if __name__ == "__main__":
    main()
