"""
Human-readable evaluation report: one self-contained HTML file with embedded PNG plots.

Plots (matplotlib, Agg backend, so no display is needed): error maps of a few frames, error by
ground-truth distance, hole fraction over time and a latency histogram per method. The numbers
come from the JSON report; nothing is recomputed here.
"""

import base64
import html
import io
import json
from typing import Any, Dict, List, Optional

import numpy as np


def _figure_png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=90, bbox_inches='tight')
    import matplotlib.pyplot as plt
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode('ascii')


def _pyplot():
    import matplotlib
    matplotlib.use('Agg', force=True)
    import matplotlib.pyplot as plt
    return plt


def plot_error_maps(maps: List[Dict[str, Any]], methods: List[str],
                    columns: int = 5) -> Optional[str]:
    """
    Colour, input depth, target depth and absolute error per method, a block per frame.

    Errors are drawn on the scored holes only; grey is not scored, white is no depth.

    :param maps: Entries of :attr:`s2ml_ros.offline_eval.Evaluation.maps`.
    :param methods: Methods to show, in order.
    :param columns: Panels per row.
    :return: Base64 PNG, or None without maps.
    """
    if not maps:
        return None
    plt = _pyplot()
    depth_cmap = plt.get_cmap('turbo').with_extremes(bad='white')
    # Grey: not scored (a measured pixel, or no target).
    error_cmap = plt.get_cmap('magma').with_extremes(bad='#d9d9d9')
    panels_per_frame = 3 + len(methods)
    cols = min(columns, panels_per_frame)
    rows_per_frame = -(-panels_per_frame // cols)
    rows = rows_per_frame * len(maps)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.1 * rows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    for block, entry in enumerate(maps):
        target = entry['target']
        finite = target[np.isfinite(target)]
        vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
        errs = [e[np.isfinite(e)] for e in entry['errors'].values()]
        # One scale for every method: the median of their 99th percentiles, so that one
        # method with metre-size errors does not turn the others black.
        emax = max(float(np.median([np.percentile(e, 99) for e in errs if e.size] or [0])),
                   1e-3)
        panels = [(f'frame {entry["index"]}: colour', entry['rgb'], None),
                  ('input depth', entry['input'], 'depth'), ('target depth', target, 'depth')]
        panels += [(f'|error| {m}', entry['errors'][m], 'error') for m in methods]
        for k, (title, img, kind) in enumerate(panels):
            ax = axes[block * rows_per_frame + k // cols][k % cols]
            if kind is None:
                ax.imshow(img)
            elif kind == 'depth':
                shown = np.where(np.asarray(img) > 0, img, np.nan)
                ax.imshow(shown, cmap=depth_cmap, vmin=0, vmax=vmax)
            else:
                im = ax.imshow(img, cmap=error_cmap, vmin=0, vmax=emax)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label='m')
            ax.set_title(title, fontsize=8)
    return _figure_png(fig)


def plot_error_by_distance(by_distance: Dict[str, List[Dict[str, Any]]]) -> Optional[str]:
    """:return: Base64 PNG of MAE on the scored holes per distance bin and method."""
    if not by_distance:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    labels = None
    for name, rows in by_distance.items():
        labels = [f'{r["range_m"][0]:g}-{r["range_m"][1]:g}' if r['range_m'][1] is not None
                  else f'>{r["range_m"][0]:g}' for r in rows]
        mae = [np.nan if r['mae'] is None else r['mae'] for r in rows]
        ax.plot(range(len(rows)), mae, marker='o', label=name)
    ax.set_xticks(range(len(labels or [])))
    ax.set_xticklabels(labels or [], fontsize=8)
    ax.set_xlabel('target distance, m')
    ax.set_ylabel('MAE on scored holes, m')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _figure_png(fig)


def plot_holes_over_time(frames: List[Dict[str, Any]]) -> Optional[str]:
    """:return: Base64 PNG of the raw and input hole fractions per frame."""
    if not frames:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    x = [f['index'] for f in frames]
    ax.plot(x, [f['hole_fraction'] for f in frames], label='raw depth holes')
    ax.plot(x, [f['input_hole_fraction'] for f in frames], label='holes given to the methods')
    ax.set_xlabel('frame')
    ax.set_ylabel('fraction of pixels')
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _figure_png(fig)


def plot_latency(frames: List[Dict[str, Any]], methods: List[str]) -> Optional[str]:
    """:return: Base64 PNG of the per-frame latency histogram of each method (log scale)."""
    values = {m: [f['methods'][m]['latency_ms'] for f in frames if m in f['methods']]
              for m in methods}
    every = [v for vs in values.values() for v in vs if v > 0]
    if not every:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.0))
    lo, hi = min(every), max(every)
    bins = np.logspace(np.log10(lo * 0.9), np.log10(hi * 1.1), 40)
    colors = plt.get_cmap('tab20').colors
    for k, name in enumerate(methods):
        if values[name]:
            ax.hist(values[name], bins=bins, alpha=0.6, label=name, color=colors[k % 20])
    ax.set_xscale('log')
    ax.set_xlabel('latency per frame, ms (log scale)')
    ax.set_ylabel('frames')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _figure_png(fig)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return '–'
    if isinstance(value, float):
        return f'{value:.{digits}g}'
    return html.escape(str(value))


def render_html(report: Dict[str, Any], maps: List[Dict[str, Any]]) -> str:
    """
    Build the HTML page.

    :param report: The JSON report (see the evaluators).
    :param maps: Error maps of a few frames.
    :return: A self-contained HTML document.
    """
    methods = list(report['overall'])
    plots = [
        ('Error maps', plot_error_maps(maps, methods)),
        ('Error by distance', plot_error_by_distance(report.get('error_by_distance', {}))),
        ('Hole fraction over time', plot_holes_over_time(report['frames'])),
        ('Latency', plot_latency(report['frames'], methods)),
    ]
    cols = ('rmse', 'mae', 'rel', 'delta1', 'psnr', 'coverage', 'pixels', 'all_rmse', 'all_mae')
    rows = []
    for name, m in report['overall'].items():
        lat = m.get('latency_ms', {})
        cells = ''.join(f'<td>{_fmt(m.get(c))}</td>' for c in cols)
        rows.append(f'<tr><th>{html.escape(name)}</th>{cells}<td>{_fmt(lat.get("mean"))}</td>'
                    f'<td>{_fmt(lat.get("p90"))}</td></tr>')
    header = ''.join(f'<th>{c}</th>' for c in cols)
    protocol = report.get('protocol', '')
    explain = {
        'ground_truth': 'Scored against the ground-truth depth topic. The plain figures are on '
                        'the raw-depth holes, <code>all_*</code> on every valid ground-truth '
                        'pixel.',
        'hidden_pixels': 'No ground truth: valid raw pixels were hidden with real hole shapes '
                         'moved from other frames, and each method was scored on the pixels it '
                         'did not see. <code>all_*</code> also counts the measured pixels.',
    }.get(protocol, '')
    model = report.get('model', {})
    source = report.get('input', {})
    figures = ''.join(
        f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" '
        f'src="data:image/png;base64,{png}">' for title, png in plots if png)
    details = html.escape(json.dumps({k: report[k] for k in ('input', 'model', 'config', 'pairing')
                                      if k in report}, indent=2, default=str))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Depth completion report</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:70em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;padding:3px 7px;text-align:right}}
img{{max-width:100%}}pre{{background:#f4f4f4;padding:1em;overflow:auto;font-size:80%}}</style>
</head><body>
<h1>Depth completion report</h1>
<p>Input: <code>{html.escape(str(source.get('path', '')))}</code>,
{report.get('frame_count', 0)} frames. Model: {html.escape(str(model.get('variant', '')))}
(sha256 <code>{html.escape(str(model.get('sha256', ''))[:16])}</code>).</p>
<p>{explain} Metrics in meters (PSNR in dB, peak 10 m); coverage is the share of scored pixels
the method filled (pixels left empty are not scored).</p>
<table><tr><th>method</th>{header}<th>latency mean ms</th><th>latency p90 ms</th></tr>
{''.join(rows)}</table>
{figures}
<h2>Details</h2><pre>{details}</pre>
</body></html>
"""
