"""Opens the single-file Allure report in headless Chromium and screenshots a failing check's chart in it, to see
that a chart shows where an incident review reads it (issue: charts in the report).

It runs the morning checklist on the sandbox with the low-storage fault (rds.free-storage fails and gets its chart),
builds the report with `entmoot-ops report`, then drives Debian's chromium through chromedriver (selenium): the
check's result page, its chart expanded, and the runbook coverage result. Prints where the screenshots are and
exits 1 if the chart is not shown.
Needs: apt-get install chromium chromium-driver; pip install selenium.
Usage: python bench/report_screenshots.py [--output DIR]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from entmoot_ops.sandbox.handle import start

ROOT = Path(__file__).resolve().parent.parent


def _uids(page: str) -> dict[str, str]:
    """Test case name -> uid, from the data the single file embeds."""
    embedded = dict(re.findall(r"d\('([^']+)','([^']*)'\)", page))
    cases = [json.loads(base64.b64decode(data)) for name, data in embedded.items() if name.startswith("data/test-cases/")]
    return {case["name"]: case["uid"] for case in cases}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "screenshots")
    output = parser.parse_args().output
    output.mkdir(parents=True, exist_ok=True)
    from selenium import webdriver
    from selenium.webdriver.common.by import By

    handle = start()
    try:
        handle.inject("rds_low_storage", free_ratio=0.05)
        time.sleep(float(handle.state.get("cloudwatch_delay", [0, 0])[1]) + 6)  # readable, in a period that has ended
        with tempfile.TemporaryDirectory() as scratch:
            reports = Path(scratch)
            environment = {**os.environ, "ENTMOOT_SANDBOX_STATE": str(handle.state_file)}
            subprocess.run([sys.executable, "-m", "pytest", "checks/", "-m", "morning", "-q", "--reports-dir", str(reports)],
                           cwd=ROOT, env=environment, capture_output=True, text=True)
            subprocess.run([sys.executable, "-m", "entmoot_ops.cli", "report", "--results", str(reports / "allure-results"),
                            "--output", str(reports / "html"), "--tools", str(ROOT / "reports" / ".tools"),
                            "--history", str(reports / "history")], cwd=ROOT, check=True, capture_output=True)
            index = reports / "html" / "index.html"
            uids = _uids(index.read_text())
            options = webdriver.ChromeOptions()
            for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1100"):
                options.add_argument(flag)
            options.binary_location = "/usr/bin/chromium"
            browser = webdriver.Chrome(options=options, service=webdriver.ChromeService("/usr/bin/chromedriver"))
            try:
                failing = next(uid for name, uid in uids.items() if name.startswith("rds.free-storage"))
                browser.get(f"file://{index}#testresult/{failing}")
                time.sleep(2)
                browser.find_element(By.XPATH, "//*[normalize-space(text())='FreeStorageSpace']").click()  # the chart's row
                time.sleep(2)
                images = [i for i in browser.find_elements(By.TAG_NAME, "img") if i.is_displayed() and i.size["height"] > 50]
                browser.save_screenshot(str(output / "failing-check-chart.png"))
                browser.get(f"file://{index}#testresult/{uids['Runbook coverage']}")
                time.sleep(2)
                browser.find_element(By.XPATH, "//*[normalize-space(text())='runbook coverage']").click()  # the table
                time.sleep(2)
                browser.save_screenshot(str(output / "runbook-coverage.png"))
            finally:
                browser.quit()
    finally:
        handle.undo("rds_low_storage")
        handle.release()
    print(f"chart shown in the single-file report: {'yes' if images else 'NO'} ({len(images)} image(s)); "
          f"screenshots: {output / 'failing-check-chart.png'}, {output / 'runbook-coverage.png'}")
    return 0 if images else 1


if __name__ == "__main__":
    sys.exit(main())
