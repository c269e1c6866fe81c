"""The report's stylesheet (inline in the HTML; no external fonts or files)."""

from __future__ import annotations

__all__ = ["CSS"]

CSS = """
:root{--fg:#1f2933;--muted:#5f6b7a;--line:#e4e7eb;--bg:#f4f6f9;--card:#fff;--accent:#2563eb;
--ok:#15803d;--bad:#b91c1c;--ink:#0f172a}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);
font:15px/1.55 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.wrap{max-width:1180px;margin:0 auto;padding:0 24px}
header.top{background:var(--ink);color:#f8fafc;padding:28px 0 22px}
header.top h1{margin:0 0 8px;font-size:26px;font-weight:650;letter-spacing:-.01em}
.meta{display:flex;flex-wrap:wrap;gap:4px 22px;color:#cbd5e1;font-size:14px}
.meta b{color:#94a3b8;font-weight:500;margin-right:4px}
.badges{margin-top:12px;display:flex;flex-wrap:wrap;gap:8px}
.badges span{background:#1e293b;border:1px solid #334155;color:#e2e8f0;border-radius:999px;
padding:2px 10px;font-size:12.5px}
nav{background:#fff;border-bottom:1px solid var(--line);position:sticky;top:0;z-index:2}
nav .wrap{display:flex;flex-wrap:wrap;gap:2px 18px;padding-top:9px;padding-bottom:9px}
nav a{color:var(--muted);text-decoration:none;font-size:13.5px}
nav a:hover{color:var(--accent)}
main{padding-bottom:32px}
section.card{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:20px 24px;margin:22px 0;box-shadow:0 1px 2px rgba(15,23,42,.04)}
h2{font-size:19px;font-weight:650;margin:0 0 14px;padding-bottom:9px;
border-bottom:1px solid var(--line)}
h3{font-size:15px;font-weight:650;margin:20px 0 8px;color:#334155}
p{margin:6px 0 10px}
.muted{color:var(--muted)}
.small{font-size:13px}
.notes{background:#fffbeb;border:1px solid #fde68a;border-radius:8px;margin-top:18px;
padding:8px 16px;font-size:14px}
.notes ul{margin:4px 0;padding-left:18px}
table{border-collapse:collapse;width:100%;font-size:14px;margin:4px 0 8px}
th,td{padding:7px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{background:#f8fafc;color:#334155;font-weight:600;border-bottom:2px solid var(--line)}
tbody th{font-weight:600;color:#334155}
tbody tr:nth-child(even){background:#fbfcfd}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.metrics thead th:not(:first-child){text-align:right}
table.metrics{max-width:760px}
table.splits{max-width:760px}
.ci{color:var(--muted);font-size:12.5px}
.dir{color:#94a3b8;font-size:12px}
.stats{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:14px}
.stat{border:1px solid var(--line);border-radius:8px;padding:8px 16px;min-width:110px;
background:#fbfcfd}
.stat .v{font-size:20px;font-weight:650;font-variant-numeric:tabular-nums}
.stat .k{font-size:12.5px;color:var(--muted)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:18px}
.grid.narrow{grid-template-columns:minmax(300px,560px)}
figure{margin:0}
figure img{display:block;width:100%;height:auto;border-radius:4px}
figcaption{font-size:13px;color:var(--muted);margin-top:6px}
.scroll{overflow-x:auto}
table.confusion{width:auto;min-width:320px}
table.confusion td.cm{text-align:center;min-width:92px;font-variant-numeric:tabular-nums}
table.confusion .pct{display:block;font-size:12px;color:#334155}
table.confusion th.corner{font-weight:500;color:var(--muted);font-size:12.5px}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:14px}
.case{border:1px solid var(--line);border-top:3px solid var(--ok);border-radius:8px;padding:8px;
background:#fff}
.case.wrong{border-top-color:var(--bad)}
.case .id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;
color:#334155;word-break:break-all}
table.kv{width:auto;min-width:50%}
table.kv th{width:220px;color:var(--muted);font-weight:500}
table.kv table.kv{margin:0}
details{margin-top:18px}
summary{cursor:pointer;color:var(--accent);font-size:14px}
pre{background:var(--ink);color:#e2e8f0;padding:14px 16px;border-radius:8px;overflow:auto;
font-size:12.5px;line-height:1.5}
footer{color:var(--muted);font-size:12.5px;text-align:center;padding:10px 0 30px}
@media (max-width:640px){.wrap{padding:0 12px}section.card{padding:14px}
.grid{grid-template-columns:1fr}header.top h1{font-size:21px}}
@media print{nav{display:none}body{background:#fff}section.card{box-shadow:none;break-inside:avoid}
details{display:block}}
"""
