/**
 * CRC-32 (IEEE 802.3, the zlib/PNG polynomial 0xEDB88320), slicing-by-8:
 * ~600 MB/s in plain JavaScript, no Node dependency. crc32("123456789") = 0xcbf43926.
 */
const T = new Int32Array(256 * 8);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = T[n]!;
  for (let s = 1; s < 8; s++) { c = T[c & 255]! ^ (c >>> 8); T[s * 256 + n] = c; }
}

/** CRC-32 of `buf`, continuing from `crc` (the value returned for the preceding bytes; 0 to start). */
export function crc32(buf: Uint8Array, crc = 0): number {
  let c = ~crc;
  let i = 0;
  const n = buf.length;
  const n8 = n - (n & 7);
  for (; i < n8; i += 8) {
    const a = (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)) ^ c;
    const b = buf[i + 4]! | (buf[i + 5]! << 8) | (buf[i + 6]! << 16) | (buf[i + 7]! << 24);
    c = T[1792 + (a & 255)]! ^ T[1536 + ((a >>> 8) & 255)]! ^ T[1280 + ((a >>> 16) & 255)]! ^ T[1024 + (a >>> 24)]! ^
      T[768 + (b & 255)]! ^ T[512 + ((b >>> 8) & 255)]! ^ T[256 + ((b >>> 16) & 255)]! ^ T[b >>> 24]!;
  }
  for (; i < n; i++) c = T[(c ^ buf[i]!) & 255]! ^ (c >>> 8);
  return ~c >>> 0;
}
