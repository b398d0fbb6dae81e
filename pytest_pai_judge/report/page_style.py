"""The HTML page's inline stylesheet and its one optional script (kept apart from html.py's markup).

The layout must hold from a 390 px phone to a wide screen with no horizontal scrolling: long ids and
texts wrap anywhere, the case list turns into stacked blocks below 720 px, charts scale down.
Fonts are the system's (no web fonts): CJK text uses whichever CJK font the viewer has.
"""

from __future__ import annotations

CSS = """
:root{--fg:#1f2328;--dim:#656d76;--line:#d8dee4;--bg:#fff;--soft:#f6f8fa}
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Noto Sans","PingFang SC","Microsoft YaHei","Noto Sans CJK SC","WenQuanYi Zen Hei",sans-serif}
main{max-width:1240px;margin:0 auto;padding:16px 24px}
header h1{margin:0;font-size:20px}
h2{font-size:18px;margin:26px 0 10px;border-bottom:1px solid var(--line);padding-bottom:6px}
h3{font-size:15px;margin:16px 0 8px;color:var(--dim)}
.meta{color:var(--dim);font-size:13px;margin:0 0 6px;font-weight:normal}
.verdict{margin:8px 0 6px;padding:10px 14px;border-radius:8px;font-size:15px;border:1px solid}
.verdict b{margin-right:6px}
.verdict.failed{background:#ffebee;border-color:#e57373;color:#8e0000}
.verdict.passed{background:#e8f5e9;border-color:#81c784;color:#1b5e20}
.verdict.none{background:var(--soft);border-color:var(--line)}
.filter input{width:100%;max-width:520px;padding:6px 10px;font:inherit;border:1px solid var(--line);border-radius:6px}
.filter span{margin-left:8px}
.case{border:1px solid var(--line);border-left:5px solid #c62828;border-radius:8px;padding:10px 14px;
margin:0 0 12px;background:#fff}
.case.st-error{border-left-color:#6a1b9a}.case.st-inconclusive{border-left-color:#b26a00}
.case.st-xpassed{border-left-color:#ef6c00}
.case-head .id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;font-weight:600}
.scoreline{font-size:15px;margin:4px 0}
.samples{font-size:13px;color:var(--dim)}
.texts{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:4px 14px}
.field .label{font-size:12px;color:var(--dim);margin-top:6px}
.allgood{color:#1b5e20}
.id,td,.pre,figcaption,.field,.verdict,.meta{overflow-wrap:anywhere}
.legend span{margin-right:14px;font-size:13px}
.legend i{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.charts{display:flex;flex-wrap:wrap;gap:12px}
figure.chart{margin:0;border:1px solid var(--line);border-radius:8px;padding:8px 8px 4px;background:#fff;
max-width:100%}
figure.chart figcaption{font-size:13px;margin-bottom:2px;max-width:340px}
figure.chart figcaption span{color:var(--dim)}
figure.chart svg{display:block;max-width:100%;height:auto}
ul.notes{font-size:13px;color:var(--dim);padding-left:18px}
svg text{font-size:11px;fill:#57606a;font-family:inherit}
svg .ytick{text-anchor:end}svg .xtick,svg .count,svg .xlabel{text-anchor:middle}
svg .count{fill:#1f2328;font-size:10px}
svg .grid{stroke:#eaeef2}svg .axis{stroke:#8c959f}
table{border-collapse:collapse}
table.cases{width:100%;table-layout:fixed}
table.cases th:nth-child(1){width:110px}table.cases th:nth-child(2){width:36%}table.cases th:nth-child(3){width:200px}
th,td{border-bottom:1px solid var(--line);padding:6px 8px;text-align:left;vertical-align:top}
th{background:var(--soft);font-size:12px;color:var(--dim);font-weight:600}
td.n,th.n{text-align:right;white-space:nowrap}
td.id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;max-width:360px}
td.id .dim{font-family:inherit}
td.score{font-size:13px}
td.text{min-width:0}
.dim{color:var(--dim);font-size:12px}
.badge{color:#fff;border-radius:10px;padding:1px 8px;font-size:12px;white-space:nowrap}
table.crit{margin-top:6px;font-size:13px}table.crit td,table.crit th{padding:2px 10px 2px 0;border:0}
details{margin:2px 0}details summary{cursor:pointer}
#others>summary{font-size:15px;padding:4px 0}
.pre{white-space:pre-wrap;background:var(--soft);border-radius:6px;padding:6px 8px;margin:2px 0;font-size:13px}
.unavailable{color:#6a1b9a;margin:4px 0}
.warning{background:#fff8e1;border:1px solid #f9a825;border-radius:6px;padding:8px 10px}
.limit{font-weight:600}.limit.bad{color:#c62828}.limit.ok{color:#2e7d32}.limit.warn{color:#8d6e00}
td.down{color:#c62828;font-weight:600}td.up{color:#2e7d32;font-weight:600}
tr.beyond td{background:#ffebee}
code{background:var(--soft);padding:1px 5px;border-radius:4px;font-size:13px;overflow-wrap:anywhere}
.check{border:1px solid var(--line);border-radius:8px;padding:8px 14px;margin:0 0 12px}
.calib{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.calib figure{margin:0}.calib figcaption{font-size:12px;color:var(--dim)}
table.disagree{width:100%;table-layout:fixed}table.disagree th:nth-child(1){width:26%}
table.disagree th:nth-child(2),table.disagree th:nth-child(3){width:64px}
svg.heat{display:block;max-width:100%;height:auto}
svg.heat .tick,svg.heat .alabel,svg.heat .cell{text-anchor:middle}svg.heat .end{text-anchor:end}
svg.heat .cell{font-size:11px;font-weight:600}svg.heat rect.diag{stroke:#1f2328;stroke-width:1.5}
footer{margin:32px 0 8px;color:var(--dim);font-size:12px}
@media (max-width:720px){
main{padding:10px 12px}
table.cases,table.cases tbody,table.cases tr,table.cases td{display:block;width:100%}
table.cases thead{display:none}
table.cases tr{border-bottom:1px solid var(--line);padding:6px 0}
table.cases td{border:0;padding:2px 0;max-width:none}
table.drift{width:100%}td.id{max-width:none}
table.disagree,table.disagree thead,table.disagree tbody{display:block}
table.disagree tr{display:grid;grid-template-columns:1fr 56px 56px;border-bottom:1px solid var(--line)}
table.disagree th,table.disagree td{width:auto!important;border:0}
table.disagree th:nth-child(4),table.disagree td:nth-child(4){grid-column:1/-1}
}
@media print{details>*{display:block}}
"""

FILTER_SCRIPT = """(function(){
var box=document.getElementById('filter');if(!box)return;
var items=[].slice.call(document.querySelectorAll('[data-case]'));if(!items.length)return;
var others=document.getElementById('others');
var input=document.createElement('input');input.type='search';input.id='filter-input';
input.placeholder='Filter the cases: test id, text, model, status';input.setAttribute('aria-label','filter the cases');
var count=document.createElement('span');count.className='dim';
box.appendChild(input);box.appendChild(count);
input.addEventListener('input',function(){
var q=input.value.toLowerCase().trim(),shown=0;
items.forEach(function(el){var hit=!q||el.textContent.toLowerCase().indexOf(q)>=0;el.hidden=!hit;if(hit)shown++;});
if(q&&others)others.open=true;
count.textContent=q?(shown+' of '+items.length+' cases match'):'';
});
})();"""
"""Adds a filter box over the case lists. Without it (JavaScript off) the page loses nothing else."""
