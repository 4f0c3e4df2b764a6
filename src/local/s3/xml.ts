/** Escapes text for an XML element or attribute. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Undoes XML escaping (the five named entities and numeric references). */
export function unescapeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, entity: string) => {
    if (entity.startsWith('#x')) return String.fromCodePoint(parseInt(entity.slice(2), 16));
    if (entity.startsWith('#')) return String.fromCodePoint(parseInt(entity.slice(1), 10));
    return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[entity]!;
  });
}

/** An XML node: text, or child elements (undefined values are left out, arrays repeat the element). */
export type XmlValue = string | number | boolean | undefined | XmlObject | XmlValue[];
export interface XmlObject {
  [name: string]: XmlValue;
}

/** One element (or, for an array, one per item) as XML text. */
export function render(name: string, value: XmlValue): string {
  if (value === undefined) return '';
  if (Array.isArray(value)) return value.map((item) => render(name, item)).join('');
  if (typeof value === 'object') return `<${name}>${Object.entries(value).map(([child, v]) => render(child, v)).join('')}</${name}>`;
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

/** An S3 response document, with S3's namespace on the root element. */
export function xmlDocument(root: string, body: XmlObject | string, namespace = true): string {
  const inner = typeof body === 'string' ? body : Object.entries(body).map(([name, value]) => render(name, value)).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root}${namespace ? ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' : ''}>${inner}</${root}>`;
}

/** The text of each `<name>…</name>` element in a document (the requests S3 takes are flat enough for this). */
export function elements(xml: string, name: string): string[] {
  const found: string[] = [];
  const pattern = new RegExp(`<${name}(?:\\s[^>]*)?>([\\s\\S]*?)</${name}>|<${name}(?:\\s[^>]*)?/>`, 'g');
  for (const match of xml.matchAll(pattern)) found.push(match[1] ?? '');
  return found;
}

/** The unescaped text of the first `<name>` element, if any. */
export function textOf(xml: string, name: string): string | undefined {
  const [first] = elements(xml, name);
  return first === undefined ? undefined : unescapeXml(first);
}
