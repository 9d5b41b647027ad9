// QR codes as inline SVG (scales crisply on any screen, prints on a till's display).
import qrcode from "qrcode-generator";

export function qrSvg(text, label) {
  const qr = qrcode(0, "M");
  qr.addData(text);
  qr.make();
  return qr.createSvgTag({ cellSize: 4, margin: 16, scalable: true, alt: label, title: label });
}
