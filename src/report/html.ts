import type { Report } from '../contracts';

export interface RejectedSample {
  /** The rejected file's header (source columns, then _row, _stage, _error_code, _error_message). */
  header: string[];
  rows: string[][];
  /** Rejected records in the file (the sample shows the first ones). */
  total: number;
}

const escape = (text: unknown) =>
  String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const OUTCOME_COLORS = { accepted: '#2e7d32', 'rejected (validation)': '#ef6c00', 'rejected (API)': '#c62828', filtered: '#78909c' } as const;

/** A horizontal bar chart as inline SVG: one bar per entry, labelled with its name and count. */
function barChart(title: string, entries: Array<{ label: string; value: number; color: string }>, id: string): string {
  const width = 640;
  const labelWidth = 220;
  const barHeight = 26;
  const max = Math.max(1, ...entries.map((e) => e.value));
  const height = entries.length * (barHeight + 8) + 36;
  const bars = entries
    .map((e, i) => {
      const y = 28 + i * (barHeight + 8);
      const w = Math.max(e.value > 0 ? 2 : 0, Math.round(((width - labelWidth - 70) * e.value) / max));
      return [
        `<text x="${labelWidth - 8}" y="${y + 18}" text-anchor="end" class="label">${escape(e.label)}</text>`,
        `<rect class="bar" data-label="${escape(e.label)}" data-value="${e.value}" x="${labelWidth}" y="${y}" width="${w}" height="${barHeight}" fill="${e.color}"><title>${escape(e.label)}: ${e.value}</title></rect>`,
        `<text x="${labelWidth + w + 6}" y="${y + 18}" class="value">${e.value.toLocaleString('en')}</text>`,
      ].join('');
    })
    .join('\n');
  return `<svg id="${id}" role="img" aria-label="${escape(title)}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" xmlns="http://www.w3.org/2000/svg">
<text x="0" y="16" class="title">${escape(title)}</text>
${bars}
</svg>`;
}

/**
 * A self-contained HTML page for one run: status and totals, a chart of records by outcome and one of rejections by
 * code, and the first rejected records with their reasons. No script, no external resource: it opens anywhere.
 */
export function renderHtml(report: Report, rejected?: RejectedSample): string {
  const file = report.files[0];
  // Reports written before rejectedByStage existed count every rejection as the API's.
  const validationRejected = report.rejectedByStage?.validate ?? 0;
  const filtered = report.rows.filtered ?? 0;
  const outcomes = [
    { label: 'accepted', value: report.rows.accepted, color: OUTCOME_COLORS.accepted },
    { label: 'rejected (validation)', value: validationRejected, color: OUTCOME_COLORS['rejected (validation)'] },
    { label: 'rejected (API)', value: report.rows.rejected - validationRejected, color: OUTCOME_COLORS['rejected (API)'] },
    // A bar only for a file its filter left records out of: the bars add up to the records read.
    ...(filtered > 0 ? [{ label: 'filtered', value: filtered, color: OUTCOME_COLORS.filtered }] : []),
  ];
  const codes = Object.entries(report.rejectionsByCode)
    .sort((a, b) => b[1] - a[1])
    .map(([code, n]) => ({ label: code, value: n, color: '#6a1b9a' }));
  const statusClass = report.status === 'FAILED' ? 'bad' : report.status === 'COMPLETED_WITH_REJECTIONS' ? 'warn' : 'good';
  const facts: Array<[string, string]> = [
    ['Dataflow', report.dataflow],
    ['File', file?.name ?? '?'],
    ['Run', report.runId],
    ['Started', report.startedAt],
    ['Duration', `${(report.durationMs / 1000).toFixed(1)} s`],
    [
      'Records',
      `${report.rows.total.toLocaleString('en')} read, ${report.rows.accepted.toLocaleString('en')} accepted, ${report.rows.rejected.toLocaleString('en')} rejected${filtered > 0 ? `, ${filtered.toLocaleString('en')} filtered` : ''}`,
    ],
    ...(file?.sha256 ? ([['SHA-256', file.sha256]] as Array<[string, string]>) : []),
    ...(file?.rejectedFile ? ([['Rejected records', file.rejectedFile]] as Array<[string, string]>) : []),
    ...(file?.filteredFile ? ([['Filtered records', file.filteredFile]] as Array<[string, string]>) : []),
    ...(report.replay ? ([['Replay', 'records are numbered as in the original file']] as Array<[string, string]>) : []),
    ...(report.dryRun ? ([['Dry run', 'nothing was sent']] as Array<[string, string]>) : []),
  ];
  const table = rejected
    ? `<h2>Rejected records${rejected.total > rejected.rows.length ? ` (the first ${rejected.rows.length} of ${rejected.total.toLocaleString('en')})` : ''}</h2>
<table id="rejected"><thead><tr>${rejected.header.map((h) => `<th>${escape(h)}</th>`).join('')}</tr></thead>
<tbody>
${rejected.rows.map((row) => `<tr>${row.map((cell) => `<td>${escape(cell)}</td>`).join('')}</tr>`).join('\n')}
</tbody></table>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(`${report.dataflow}: ${file?.name ?? ''} — ${report.status}`)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1b1b1b;max-width:1100px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
.status{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}
.good{background:#2e7d32}.warn{background:#ef6c00}.bad{background:#c62828}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:16px 0} dt{color:#555} dd{margin:0;word-break:break-all}
.charts{display:flex;flex-wrap:wrap;gap:24px} svg .title{font-weight:600;font-size:14px} svg .label,svg .value{font-size:13px}
.error{background:#fdecea;border-left:4px solid #c62828;padding:8px 12px}
table{border-collapse:collapse;font-size:12px;display:block;overflow-x:auto} th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top} th{background:#f5f5f5}
</style></head>
<body>
<h1>${escape(report.dataflow)}: ${escape(file?.name ?? '')} <span class="status ${statusClass}" id="status">${escape(report.status)}</span></h1>
<dl>${facts.map(([k, v]) => `<dt>${escape(k)}</dt><dd>${escape(v)}</dd>`).join('')}</dl>
${report.error ? `<p class="error"><strong>${escape(report.error.code)}</strong>: ${escape(report.error.message)}</p>` : ''}
<div class="charts">
${barChart('Records by outcome', outcomes, 'outcomes')}
${codes.length > 0 ? barChart('Rejections by code', codes, 'codes') : ''}
</div>
${table}
</body></html>
`;
}
