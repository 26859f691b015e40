#!/bin/sh
# Make sure Debian's `chromium` is on PATH for the report's browser test (tests/test_report_browser.py).
# `make test` runs this before pytest. It installs chromium with apt-get when it can (root, apt-get
# present); when it cannot, it prints a loud warning and exits 0: the browser test then skips with a
# message of its own, unless NPS_BROWSER_REQUIRED=1 (make test sets it when chromium is present).
# playwright's own browser download is never used: the test drives this chromium via executable_path.
set -u

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi

warn() {
    cat >&2 <<MSG

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! WARNING: Debian's chromium is not installed and could not be installed here ($1).
!! The report's browser test (tests/test_report_browser.py) will be SKIPPED: the HTML report
!! is NOT checked in a real browser (console errors, network requests, layout, printing).
!! Install it with:   sudo apt-get install chromium
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!

MSG
    exit 0
}

if [ "$(id -u)" != 0 ]; then
    warn "not running as root"
fi
if ! command -v apt-get >/dev/null 2>&1; then
    warn "apt-get is not available"
fi

echo "ensure-chromium: installing Debian's chromium for the report's browser test" >&2
# quiet on success, the errors shown: apt-get -qq still writes errors to stderr
if ! apt-get -qq update >/dev/null; then
    warn "apt-get update failed"
fi
if ! DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get -qq install -y --no-install-recommends chromium >/dev/null; then
    warn "apt-get install chromium failed"
fi
if ! command -v chromium >/dev/null 2>&1; then
    warn "chromium is still not on PATH after apt-get install"
fi
echo "ensure-chromium: $(chromium --version 2>/dev/null || echo chromium) installed" >&2
