"""The HTML report of a real run, as a person sees it in headless Chromium (Debian's ``chromium``).

A real inner run against a local judge server (over HTTP, one fault to get a judge error) writes the
report; the page is rendered with drift against a baseline. A copy of the page gets a probe script
(allowed by adding its hash to the page's Content-Security-Policy) that measures what the browser
laid out: element boxes, the document's scroll width against the viewport, the order of sections,
whether the filter box works, and whether Chinese text is drawn with real glyphs (two different
characters must not render as the same "tofu" box). ``--dump-dom`` hands the measurements back.
Skipped, saying why, only when no Chromium can be found (``.ci/run`` installs it with apt).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_pai_judge.report.drift import compute_drift
from pytest_pai_judge.report.html import SCRIPT_HASH, render_html
from pytest_pai_judge.report.table import read_report
from pytest_pai_judge.server import LocalJudgeServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: install Debian's chromium package "
                                "(apt-get install chromium fonts-noto-cjk) to run the browser test")

SUITE = textwrap.dedent('''
    import pytest
    from pytest_pai_judge import assert_judge_agrees, assert_judge_prefers, assert_judge_score

    Q, REF = "What is the capital of France?", "Paris is the capital of France."
    GOOD = ["The capital of France is Paris.", "Paris is the capital of France.", "France's capital city is Paris.",
            "It is Paris, the capital of France.", "Paris.", "The French capital is Paris.",
            "Paris is France's capital city.", "France has Paris as its capital."]

    @pytest.mark.parametrize("answer", GOOD, ids=[f"good{i}" for i in range(len(GOOD))])
    def test_good(answer):
        assert_judge_score(Q, answer, 2, ref_answer=REF)

    def test_wrong_zh():
        assert_judge_score("长城主要是在哪个朝代修建的?", "长城是唐朝诗人李白在一夜之间修建的。", 4,
                           ref_answer="现存长城大部分修建于明朝。")

    def test_long_wrong():
        assert_judge_score(Q, "Bananas are yellow fruit, and https://example.invalid/a/very/long/path/without/any/"
                           "break/at/all/" + "x" * 300 + " " + "Bananas are yellow fruit. " * 80, 4, ref_answer=REF)

    @pytest.mark.parametrize("answer", ["I think it might be Paris.", "Lyon is a big city."], ids=["borderline", "bad"])
    def test_noisy(answer):
        assert_judge_score(Q, answer, 4, ref_answer=REF, samples=5, temperature=0.7)

    def test_broken():
        assert_judge_score("BROKEN-REPLY what is 1+1?", "2", 1, ref_answer="2")

    def test_pair():
        assert_judge_prefers(Q, "Bananas.", "The capital of France is Paris.")

    def test_ten():
        assert_judge_score(Q, "Lyon.", 6, ref_answer=REF, max_score=10, score_desc="1 to 10, 10 is best")

    def test_labels():
        assert_judge_agrees("labels.jsonl", id="id", threshold=4, min_within_one=0.1, temperature=0)
''')
FAILING = ["test_broken", "test_ten", "test_long_wrong", "test_noisy[bad]", "test_pair", "test_wrong_zh",
           "test_noisy[borderline]"]

PROBE = textwrap.dedent("""
(function(){
var W=window.innerWidth,out={inner:W,scroll:document.documentElement.scrollWidth,boxes:{},wide:[]};
function box(e){if(!e)return null;var r=e.getBoundingClientRect();
return {top:r.top+scrollY,left:r.left,right:r.right,width:r.width,height:r.height};}
['#verdict','header','#facts','#attention','#drift','#calibration','svg.heat','#charts','#passing','#filter-input',
'figure.chart']
.forEach(function(s){out.boxes[s]=box(document.querySelector(s));});
out.cards=[].map.call(document.querySelectorAll('#attention article.case'),function(e){
var b=box(e);b.id=e.querySelector('.id').textContent;return b;});
document.querySelectorAll('body *').forEach(function(e){var r=e.getBoundingClientRect();
if(r.width>0&&(r.right>W+1||r.left<-1))out.wide.push(e.tagName+'.'+e.className+' '+Math.round(r.left)+'..'+
Math.round(r.right));});
var input=document.getElementById('filter-input');
if(input){input.value='BROKEN-REPLY';input.dispatchEvent(new Event('input'));
out.matching=[].filter.call(document.querySelectorAll('[data-case]'),function(e){return !e.hidden;}).length;
input.value='';input.dispatchEvent(new Event('input'));}
var zh=[].find.call(document.querySelectorAll('#attention .pre'),function(e){return /[\\u4e00-\\u9fff]/.test(e.textContent);});
if(zh){var chars=zh.textContent.match(/[\\u4e00-\\u9fff]/g).filter(function(c,i,a){return a.indexOf(c)===i;});
var family=getComputedStyle(zh).fontFamily;
function ink(ch){var c=document.createElement('canvas');c.width=c.height=64;var x=c.getContext('2d');
x.font='40px '+family;x.fillStyle='#000';x.fillText(ch,8,48);var d=x.getImageData(0,0,64,64).data,sig=[],n=0;
for(var i=3;i<d.length;i+=4){sig.push(d[i]>127?1:0);n+=d[i]>127?1:0;}return {sig:sig.join(''),n:n,w:x.measureText(ch).width};}
var a=ink(chars[0]),b=ink(chars[1]),missing=ink('\\u0378');
out.cjk={chars:chars.slice(0,2).join(''),differ:a.sig!==b.sig,inked:Math.min(a.n,b.n),
likeMissing:a.sig===missing.sig||b.sig===missing.sig,width:a.w,
visibleHeight:box(zh).height};}
var host=window.parent.document,pre=host.createElement('pre');pre.id='probe';pre.textContent=JSON.stringify(out);
host.body.appendChild(pre);
})();
""")


def chromium(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout, check=False)


def probe(page: Path, width: int, height: int = 30000) -> dict[str, Any]:
    """Lay out a copy of ``page`` in a ``width`` px viewport with the probe script appended; its measurements.

    The copy is the ``srcdoc`` of an iframe that wide (Chromium's headless window is at least 500 px
    wide, an iframe can be narrower; media queries inside it see its width), tall enough for no
    vertical scrollbar; the probe writes its JSON into the host page, which ``--dump-dom`` prints.
    """
    text = page.read_text("utf-8")
    probe_hash = "sha256-" + base64.b64encode(hashlib.sha256(PROBE.encode("utf-8")).digest()).decode("ascii")
    assert f"script-src '{SCRIPT_HASH}'" in text
    copy = (text.replace(f"script-src '{SCRIPT_HASH}'", f"script-src '{SCRIPT_HASH}' '{probe_hash}'")
            .replace("</body>", f"<script>{PROBE}</script></body>"))
    host = page.with_name(f"probe-{width}.html")
    host.write_text(f"<!doctype html><html><body style='margin:0'><iframe style='border:0;width:{width}px;"
                    f"height:{height}px' srcdoc=\"{html.escape(copy, quote=True)}\"></iframe></body></html>", "utf-8")
    done = chromium("--dump-dom", f"--window-size={max(width, 500) + 40},1000", host.as_uri())
    found = done.stdout.partition('<pre id="probe">')[2].partition("</pre>")[0]
    assert found, f"no probe output (rc {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found))


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


@pytest.fixture(scope="module")
def real_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run's report (local server over HTTP), rendered with drift against a baseline where one case
    scored 2 points higher, and ``--judge-max-drop=1``."""
    root = tmp_path_factory.mktemp("browser-run")
    (root / "test_suite.py").write_text(SUITE, "utf-8")
    shutil.copy(Path(__file__).resolve().parents[1] / "examples" / "labels.jsonl", root / "labels.jsonl")
    with LocalJudgeServer(data_dir=root / "server", faults=["BROKEN-REPLY=unreadable"]) as server:
        run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q",
                              "--judge-cache=off", "--judge-base-url", server.url, "--judge-report=run.jsonl",
                              "--judge-report=run.html"], cwd=root, capture_output=True, text=True, timeout=300,
                             check=False)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    assert "7 failed, 9 passed" in run.stdout, run.stdout[-3000:]
    df = read_report(root / "run.jsonl")
    baseline = df.copy()
    baseline.loc[baseline["nodeid"] == "test_suite.py::test_good[good0]", "score"] += 2
    page = root / "page.html"
    checks = json.loads((root / "run.calibration.json").read_text("utf-8"))["checks"]
    page.write_text(render_html(df, compute_drift(baseline, df), baseline="baseline.jsonl", max_drop=1,
                                checks=checks), "utf-8")
    return page


def test_the_page_a_person_sees_at_1280_px(real_page: Path) -> None:
    seen = probe(real_page, 1280)
    boxes = seen["boxes"]
    assert seen["inner"] == 1280 and seen["scroll"] <= seen["inner"], f"horizontal overflow: {seen['scroll']} px"
    assert not seen["wide"], f"elements past the viewport's edge: {seen['wide']}"
    assert boxes["#verdict"]["top"] < 120, "the verdict line is at the top"
    order = ["#verdict", "#attention", "#drift", "#calibration", "#charts", "#passing"]
    tops = [boxes[s]["top"] for s in order]
    assert tops == sorted(tops), f"sections out of order: {dict(zip(order, tops))}"
    cards = seen["cards"]
    assert [c["id"].rpartition("::")[2] for c in cards] == FAILING, "failing cases first, worst first"
    assert cards[0]["top"] < 500, "the first failing case is on the first screen"
    assert all(c["width"] > 1000 for c in cards), "cards use the width"
    assert all(a["top"] + a["height"] <= b["top"] for a, b in zip(cards, cards[1:])), "cards do not overlap"
    assert boxes["#filter-input"] is not None, "the filter script ran under the page's CSP"
    assert seen["matching"] == 1, "the filter keeps only the case whose text matches"


def test_the_page_fits_a_390_px_phone_and_draws_chinese(real_page: Path) -> None:
    seen = probe(real_page, 390)
    assert seen["inner"] == 390 and seen["scroll"] <= 390, f"horizontal overflow at 390 px: {seen['scroll']} px"
    assert not seen["wide"], f"elements past the viewport's edge: {seen['wide']}"
    boxes = seen["boxes"]
    assert boxes["#verdict"]["top"] < 150 and boxes["#verdict"]["width"] <= 390
    assert boxes["figure.chart"]["width"] <= 390, "charts scale down"
    assert boxes["svg.heat"]["width"] <= 390, "the confusion heatmap fits"
    assert all(360 <= c["width"] <= 390 for c in seen["cards"]), [c["width"] for c in seen["cards"]]
    cjk = seen["cjk"]
    fonts = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=False).stdout
    assert cjk["differ"] and not cjk["likeMissing"] and cjk["inked"] > 50, (
        f"Chinese text {cjk['chars']!r} is drawn as tofu boxes; CJK fonts installed: {fonts.strip() or 'none'} "
        "(apt-get install fonts-noto-cjk)")
    assert cjk["width"] > 30, "a CJK glyph is about one em wide"


def test_screenshots_have_the_window_size(real_page: Path, tmp_path: Path) -> None:
    for width in (1280, 390):
        shot = tmp_path / f"shot-{width}.png"
        done = chromium(f"--screenshot={shot}", f"--window-size={width},1400", real_page.as_uri())
        assert shot.is_file(), done.stderr[-2000:]
        assert png_size(shot) == (width, 1400)
        assert shot.stat().st_size > 20_000, "not a blank page"
