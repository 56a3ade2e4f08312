"""The report's Jinja2 templates (autoescaped HTML) and ``render``.

Pages are self-contained: the style is inline, images are PNG files beside the page,
and nothing is fetched from a network, so a page opens from disk anywhere. Metric cells
carry their exact value in ``data-value`` (and what they are in ``data-metric``,
``data-slice``, ``data-model``) so a test or a script can read them back.
"""

import functools

import jinja2
import markupsafe

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 76em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #1a7f37; } .fail { color: #c62828; font-weight: bold; }
.verdict { padding: .6em 1em; border-radius: 4px; margin: 1em 0; }
.verdict.blessed { background: #e6f4ea; border: 1px solid #1a7f37; }
.verdict.not-blessed { background: #fdecea; border: 1px solid #c62828; }
.verdict.none { background: #f4f4f4; border: 1px solid #999; }
img { max-width: 100%; } .figures img { margin: .3em 1em .3em 0; vertical-align: top; }
.muted { color: #666; font-size: .9em; } code { font-size: .95em; }
nav a { margin-right: 1em; } .nowrap { white-space: nowrap; }
.explanations figure { display: inline-block; width: 48%; margin: .5em 1% .5em 0; vertical-align: top; }
.explanations figcaption { font-size: .85em; }
"""

_TEMPLATES = {
  "page.html": """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>{{ style }}</style></head>
<body>
{{ body }}
</body></html>
""",
  "run.html": """<nav><a href="../index.html">All runs</a>{% for id, name in sections %}<a href="#{{ id }}">{{ name }}</a>{% endfor %}</nav>
<h1>Run {{ run_id }}</h1>
<p class="muted">Pipeline <code>{{ pipeline }}</code>, started {{ started }} UTC, {{ seconds }} s in components.
Built from ML Metadata by <code>imdb-tfx report</code>.</p>
{% if blessed is none %}<div class="verdict none" id="verdict">No blessing: {{ failed_at or "the Evaluator did not run" }}.</div>
{% elif blessed %}<div class="verdict blessed" id="verdict"><b>BLESSED</b>: every threshold held.
{% else %}<div class="verdict not-blessed" id="verdict"><b>NOT blessed</b>:
<ul class="reasons">{% for r in reasons %}<li>{{ r }}</li>{% endfor %}</ul>
{% endif %}{% if blessed is not none %}{% if pushed_path %}<p>Pushed as version <b>{{ pushed_version }}</b> to <code>{{ pushed_path }}</code>.</p>
{% else %}<p>Nothing pushed.</p>{% endif %}</div>{% endif %}
{% if failed_at %}<p class="fail">The run failed at {{ failed_at }}.</p>{% endif %}
{% for id, name, html in bodies %}<section id="{{ id }}"><h2>{{ name }}</h2>
{{ html }}</section>
{% endfor %}""",
  "data.html": """<h3>Examples per split</h3>
<table><tr><th>split</th><th>examples</th><th>positive</th></tr>
{% for c in counts %}<tr><td>{{ c.split }}</td><td class="num" data-split="{{ c.split }}">{{ c.examples }}</td><td class="num">{{ c.positive }}</td></tr>{% endfor %}
</table>
{% if rejections %}<h3>Refused rows</h3>
<table><tr>{% for k, v in rejections.counts.items() %}<th>{{ k }}</th>{% endfor %}</tr>
<tr>{% for k, v in rejections.counts.items() %}<td class="num">{{ v }}</td>{% endfor %}</tr></table>
{% if rejections.by_reason %}<table><tr><th>reason</th><th>rows</th></tr>
{% for reason, n in rejections.by_reason.items() %}<tr><td>{{ reason }}</td><td class="num">{{ n }}</td></tr>{% endfor %}</table>{% endif %}
{% if rejections.first %}<p>First refused rows:</p><ul>{% for row in rejections.first %}<li><code>{{ row.file }}:{{ row.line }}</code> {{ row.reason }}</li>{% endfor %}</ul>{% endif %}
{% endif %}
<h3>Features (TFDV statistics)</h3>
{% if facets_page %}<p class="muted">TFDV's own Facets Overview of these statistics: <a href="{{ facets_page }}">{{ facets_page }}</a> (it loads Facets from the network).</p>{% endif %}
<table><tr><th>feature</th><th>split</th><th>mean</th><th>std dev</th><th>zeros</th><th>min</th><th>median</th><th>max</th><th>unique</th><th>mean length</th><th>top values</th><th>missing</th></tr>
{% for f in features %}<tr><td>{{ f.feature }}</td><td>{{ f.split }}</td>
{% if f.kind == "numeric" %}<td class="num">{{ f.mean }}</td><td class="num">{{ f.std_dev }}</td><td class="num">{{ f.zeros }}</td><td class="num">{{ f.min }}</td><td class="num">{{ f.median }}</td><td class="num">{{ f.max }}</td><td></td><td></td><td></td>
{% elif f.kind == "string" %}<td></td><td></td><td></td><td></td><td></td><td></td><td class="num">{{ f.unique }}</td><td class="num">{{ f.avg_length }}</td><td>{{ f.top }}</td>
{% else %}<td colspan="9"></td>{% endif %}<td class="num">{{ f.missing }}</td></tr>{% endfor %}
</table>
<div class="figures">{% for name, image in histograms.items() %}<img src="{{ image }}" alt="{{ name }} histogram">{% endfor %}</div>
<h3>Anomalies (ExampleValidator)</h3>
{% if anomalies %}<table><tr><th>split</th><th>feature</th><th>anomaly</th><th>description</th></tr>
{% for a in anomalies %}<tr><td>{{ a.split }}</td><td>{{ a.feature }}</td><td class="fail">{{ a.short }}</td><td>{{ a.long }}</td></tr>{% endfor %}</table>
{% elif anomaly_splits %}<p class="pass">No anomalies in {{ anomaly_splits|join(", ") }}.</p>
{% else %}<p class="muted">The ExampleValidator did not run.</p>{% endif %}
<h3>Drift from the previous span (DistributionValidator)</h3>
{% if not drift_checked %}<p class="muted">No drift check in this run (it compares spans).</p>
{% else %}{% if drift_rows %}<table><tr>{% for k in drift_rows[0].keys() %}<th>{{ k }}</th>{% endfor %}</tr>
{% for row in drift_rows %}<tr>{% for v in row.values() %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}
<p class="{{ 'fail' if drift_stopped else 'pass' }}">{{ "Drift beyond the thresholds stopped the run before Transform." if drift_stopped else "Within the drift thresholds." }}</p>{% endif %}
""",
  "training.html": """<table>{% for k, v in facts %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>
{% if curves %}<div class="figures"><img src="{{ curves }}" alt="training curves"></div>{% endif %}
{% if rows %}<table><tr><th>epoch</th>{% for c in columns %}<th>{{ c }}</th>{% endfor %}<th>seconds</th></tr>
{% for r in rows %}<tr{% if r.kept %} style="font-weight:bold"{% endif %}><td>{{ r.epoch }}{% if r.kept %} (kept){% endif %}</td>{% for v in r.cells %}<td class="num">{{ v }}</td>{% endfor %}<td class="num">{{ r.seconds }}</td></tr>{% endfor %}</table>{% endif %}
{% if pretraining %}<h3>Embedding pretraining (word2vec)</h3>
<table>{% for k, v in pretraining %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>{% endif %}
""",
  "evaluation.html": """<p class="muted">TFMA's metrics; the gates apply to the golden test split ({{ golden }}).</p>
<h3>Gates</h3>
{% if thresholds %}<table><tr><th>metric</th><th>slice</th><th>kind</th><th>threshold</th><th>value</th><th>verdict</th></tr>
{% for t in thresholds %}<tr><td>{{ t.metric }}</td><td>{{ t.slice }}</td><td>{{ t.kind }}</td><td>{{ t.bound }}</td>
<td class="num" data-gate="{{ t.metric }}:{{ t.kind }}:{{ t.slice }}" data-value="{{ '%r'|format(t.value) }}">{{ t.shown }}</td>
<td class="{{ 'pass' if t.passed else 'fail' }}">{{ "passed" if t.passed else "FAILED" }}</td></tr>{% endfor %}</table>
{% else %}<p class="muted">No gate in the EvalConfig.</p>{% endif %}
<h3>Metrics by slice</h3>
{% if has_baseline %}<p class="muted">Each cell: the candidate's value; below it, the serving model's (baseline) and the change.</p>{% endif %}
<table class="metrics"><tr><th>slice</th>{% for m in metric_names %}<th>{{ m }}</th>{% endfor %}</tr>
{% for row in table %}<tr><td>{{ row.slice }}</td>{% for c in row.cells %}<td class="num"><span data-slice="{{ row.slice }}" data-metric="{{ c.metric }}" data-model="candidate" data-value="{{ '%r'|format(c.value) }}">{{ c.shown }}</span>{% if c.baseline is not none %}<br><span class="muted">{{ c.baseline }} ({{ c.change or "-" }})</span>{% endif %}</td>{% endfor %}</tr>
{% endfor %}</table>
<div class="figures">{% if calibration %}<img src="{{ calibration }}" alt="calibration plot">{% endif %}{% if confusion %}<img src="{{ confusion }}" alt="confusion matrix">{% endif %}</div>
""",
  "behaviour.html": """{% if rows %}<table><tr><th>capability</th><th>test</th><th>candidate</th>{% if has_baseline %}<th>serving model</th>{% endif %}<th>threshold</th><th>verdict</th></tr>
{% for r in rows %}<tr><td>{{ r.capability }}</td><td>{{ r.type }}</td>
<td class="num" data-capability="{{ r.capability }}" data-value="{{ '%r'|format(r.candidate) }}">{{ r.candidate_shown }}</td>
{% if has_baseline %}<td class="num">{{ r.baseline_shown }}</td>{% endif %}<td class="num">{{ r.threshold }}</td>
<td class="{{ 'pass' if r.passed else 'fail' }}">{{ ("passed" if r.passed else "FAILED") if r.gated else "not gated" }}</td></tr>{% endfor %}</table>
{% if reasons %}<ul class="reasons">{% for r in reasons %}<li>{{ r }}</li>{% endfor %}</ul>{% endif %}
{% else %}<p class="muted">The BehaviourValidator did not run.</p>{% endif %}
""",
  "explanations.html": """<p class="muted">Attention of the candidate over golden-test reviews it gets right, then wrong. Attention shows where the model looked, not what caused its answer (Jain &amp; Wallace 2019).</p>
<div class="explanations">{% for r in reviews %}<figure><figcaption class="{{ 'pass' if r.correct else 'fail' }}">{{ "Right" if r.correct else "Wrong" }}: labelled {{ r.label }}, predicted {{ r.predicted }} (p(positive) {{ r.probability }}), {{ r.words }} words. Most attended: {{ r.top }}</figcaption>
<img src="{{ r.image }}" alt="attention heatmap"></figure>
{% else %}<p class="muted">No review explained.</p>{% endfor %}</div>
""",
  "lineage.html": """<table><tr><th>component</th><th>state</th><th>seconds</th><th>inputs</th><th>outputs</th></tr>
{% for n in nodes %}<tr><td>{{ n.node_id }}</td><td class="{{ 'fail' if n.state == 'FAILED' else '' }}">{{ n.state }}</td><td class="num">{{ n.seconds }}</td>
{% for side in (n.inputs, n.outputs) %}<td>{% for a in side %}<div><b>{{ a.key }}</b>: {{ a.type }} #{{ a.id }}{% if a.span is not none %} span {{ a.span }}{% if a.version %} v{{ a.version }}{% endif %}{% endif %}<br><code class="muted">{{ a.uri }}</code></div>{% endfor %}</td>{% endfor %}</tr>
{% endfor %}</table>
""",
  "history.html": """<h1>Runs of {{ pipeline }}</h1>
<p class="muted">Every run in ML Metadata, oldest first. Built by <code>imdb-tfx report</code>.</p>
{% if plot %}<div class="figures"><img src="{{ plot }}" alt="golden-test accuracy and AUC per run"></div>{% endif %}
<table><tr><th>#</th><th>run</th><th>started (UTC)</th><th>span</th><th>trainer</th><th>test accuracy</th><th>AUC</th><th>suite fail</th><th>blessed</th><th>pushed</th><th>why not / failed at</th></tr>
{% for r in runs %}<tr><td>{{ loop.index }}</td><td class="nowrap">{% if r.link %}<a href="{{ r.link }}">{{ r.run_id }}</a>{% else %}{{ r.run_id }}{% endif %}</td><td class="nowrap">{{ r.started }}</td><td>{{ r.span }}</td><td>{{ r.trainer }}</td>
<td class="num" data-run="{{ r.run_id }}" data-metric="binary_accuracy" data-value="{{ '%r'|format(r.accuracy_value) }}">{{ r.accuracy }}</td><td class="num">{{ r.auc }}</td><td class="num">{{ r.suite }}</td>
<td class="{{ r.blessed_class }}">{{ r.blessed }}</td><td>{{ r.pushed }}</td><td>{{ r.why }}</td></tr>{% endfor %}
</table>
""",
}


@functools.cache
def _environment() -> jinja2.Environment:
  return jinja2.Environment(
    loader=jinja2.DictLoader(_TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=False,
  )


def render(name: str, **values) -> str:
  """Renders template ``name`` with ``values``.

  Raises:
    jinja2.UndefinedError: a value the template uses is missing.
  """
  return _environment().get_template(name).render(**values)


def page(title: str, body: str) -> str:
  """A whole HTML document around ``body`` (already rendered, inserted as is)."""
  return render("page.html", title=title, style=_STYLE, body=markupsafe.Markup(body))


def markup(html: str):
  """``html`` marked safe: a section already rendered, inserted into a page as is."""
  return markupsafe.Markup(html)
