"""The run's lineage as inline SVG: executions (boxes, coloured by state) and the artifacts they
read and wrote (rounded boxes), top to bottom in dependency order, e.g. Examples -> Transform
-> Model -> Evaluation -> Blessing -> PushedModel. Drawn here, no graph-layout program: each
node's row is its longest path from a source; within a row nodes follow their predecessors'
mean position."""

import html

from pipeline.run_report.record import REPORT_NODE, Run

ROW = 56  # pixels per row
NODE_W, NODE_H, GAP = 200, 34, 24
MARGIN = 12
STATE_COLOURS = {
    'COMPLETE': '#d8f0d8',
    'CACHED': '#dde8f7',
    'FAILED': '#f8d0d0',
    'RUNNING': '#fbf0c0',
}
ARTIFACT_COLOUR = '#f4f4f4'


def _graph(run: Run):
    """(labels, tooltips, fill colours, ML Metadata ids, edges) of the nodes: ('e', position
    in the run) and ('a', artifact id)."""
    labels, tips, fills, mlmd_ids, edges = {}, {}, {}, {}, []
    for i, e in enumerate(run.executions):
        if not e.inputs and not e.outputs and e.state != 'FAILED':
            continue  # a resolver's query: its result shows as its consumer's input
        node = ('e', i)  # by position: executions known only from a pipeline's structure have no id
        labels[node] = e.node
        tips[node] = f'{e.node}: execution {e.id or "(id unknown)"}, {e.state}'
        mlmd_ids[node] = e.id or ''
        fills[node] = STATE_COLOURS.get(e.state, '#eeeeee')
        for key, ids in e.inputs.items():
            edges += [(('a', i), node, key) for i in ids]
        for key, ids in e.outputs.items():
            edges += [(node, ('a', i), key) for i in ids]
    executions_here = {e.id for e in run.executions}
    for a in run.artifacts.values():
        node = ('a', a.id)
        labels[node] = f'{a.type.split(".")[-1]} {a.id}'
        mlmd_ids[node] = a.id
        earlier = a.producer_execution not in executions_here and a.producer
        tips[node] = f'{a.type} {a.id}: {a.uri}' + (
            f' (written by {a.producer}, execution {a.producer_execution}, in an earlier run)'
            if earlier
            else ''
        )
        fills[node] = ARTIFACT_COLOUR
    edges = [(s, t, k) for s, t, k in edges if s in labels and t in labels]
    # The report reads nearly everything; of its inputs only those nothing else read (the ends
    # of the run: the push, the evaluation, the training logs) are drawn, not a fan of lines.
    reports = {('e', i) for i, e in enumerate(run.executions) if e.node == REPORT_NODE}
    read_elsewhere = {s for s, t, _ in edges if t not in reports}
    edges = [(s, t, k) for s, t, k in edges if t not in reports or s not in read_elsewhere]
    return labels, tips, fills, mlmd_ids, edges


def _rows(nodes, edges) -> dict:
    """Longest path from a source; a source artifact (written in an earlier run) sits just above
    its first reader rather than at the top."""
    preds = {n: [s for s, t, _ in edges if t == n] for n in nodes}
    row = {}

    def depth(n):
        if n not in row:
            row[n] = 1 + max((depth(p) for p in preds[n]), default=-1)
        return row[n]

    for n in nodes:
        depth(n)
    for n in nodes:
        if n[0] == 'a' and not preds[n]:
            readers = [row[t] for s, t, _ in edges if s == n]
            if readers:
                row[n] = min(readers) - 1
    return row


def svg(run: Run) -> str:
    """The lineage graph as an <svg> element, or '' when the run recorded no executions."""
    labels, tips, fills, mlmd_ids, edges = _graph(run)
    if not labels:
        return ''
    row = _rows(list(labels), edges)
    layers = {}
    for node in sorted(labels, key=lambda n: (n[0] != 'e', n[1])):
        layers.setdefault(row[node], []).append(node)
    x = {}
    for r in sorted(layers):
        nodes = layers[r]

        def mean_x(n, r=r):
            parents = [x[s] for s, t, _ in edges if t == n and s in x]
            return sum(parents) / len(parents) if parents else float('inf')

        nodes.sort(key=mean_x)
        for i, n in enumerate(nodes):
            x[n] = i
    width = max(len(nodes) for nodes in layers.values()) * (NODE_W + GAP) - GAP + 2 * MARGIN
    position = {}
    for r, nodes in layers.items():
        offset = (width - len(nodes) * (NODE_W + GAP) + GAP) / 2
        for i, n in enumerate(nodes):
            position[n] = (offset + i * (NODE_W + GAP), MARGIN + r * ROW)
    height = MARGIN * 2 + max(layers) * ROW + NODE_H
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width:.0f}" '
        f'height="{height}" viewBox="0 0 {width:.0f} {height}" role="img" '
        f'aria-label="lineage of run {html.escape(run.run_id)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#777"/></marker></defs>',
    ]
    for source, target, key in edges:
        (x1, y1), (x2, y2) = position[source], position[target]
        x1, y1, x2, y2 = x1 + NODE_W / 2, y1 + NODE_H, x2 + NODE_W / 2, y2
        bend = (y2 - y1) / 2
        parts.append(
            f'<path d="M{x1:.0f},{y1:.0f} C{x1:.0f},{y1 + bend:.0f} {x2:.0f},{y2 - bend:.0f} '
            f'{x2:.0f},{y2:.0f}" fill="none" stroke="#999" marker-end="url(#arrow)">'
            f'<title>{html.escape(key)}</title></path>'
        )
    for node, (left, top) in position.items():
        radius = 4 if node[0] == 'e' else 14
        weight = 'bold' if node[0] == 'e' else 'normal'
        parts.append(
            f'<g class="{"execution" if node[0] == "e" else "artifact"}" '
            f'data-id="{mlmd_ids[node]}"><title>{html.escape(tips[node])}</title>'
            f'<rect x="{left:.0f}" y="{top}" width="{NODE_W}" height="{NODE_H}" rx="{radius}" '
            f'fill="{fills[node]}" stroke="#666"/>'
            f'<text x="{left + NODE_W / 2:.0f}" y="{top + NODE_H / 2 + 4}" text-anchor="middle" '
            f'font-size="12" font-weight="{weight}" font-family="sans-serif">'
            f'{html.escape(labels[node])}</text></g>'
        )
    parts.append('</svg>')
    return '\n'.join(parts)
