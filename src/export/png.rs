//! A character card inside a PNG, as frontends read it: the card's JSON,
//! base64-encoded, as the text of a `tEXt` chunk with the keyword `chara`.
//!
//! The avatar is copied chunk by chunk (memory stays at one buffer
//! whatever its size), each chunk's CRC checked on the way; `chara` and
//! `ccv3` text chunks already there (an earlier card) are left out, and the
//! new `chara` chunk goes just before `IEND`. Anything that is not a
//! well-formed PNG is refused.

use std::io::{self, Read, Write};

use base64::Engine as _;

/// The eight bytes every PNG starts with.
pub const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
/// The keyword frontends read a V2 card from.
pub const KEYWORD: &str = "chara";
/// The keyword of a V3 card, which would shadow a V2 one in some readers.
const V3_KEYWORD: &str = "ccv3";
/// Longest chunk the PNG specification allows.
const MAX_CHUNK: u32 = 0x7fff_ffff;

#[derive(Debug, thiserror::Error)]
pub enum PngError {
    #[error("not a PNG file (its first bytes are not the PNG signature)")]
    NotPng,
    #[error("the PNG is cut short in its chunk {0}")]
    Truncated(String),
    #[error("the PNG's chunk {chunk} is corrupt (its CRC does not match)")]
    BadCrc { chunk: String },
    #[error("the PNG is malformed: {0}")]
    Malformed(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Copies the PNG `avatar` to `out` with `card` (JSON) in a `chara` chunk.
pub fn embed(avatar: &mut impl Read, card: &str, out: &mut impl Write) -> Result<(), PngError> {
    let mut signature = [0u8; 8];
    read_exact(avatar, &mut signature, "signature").map_err(|_| PngError::NotPng)?;
    if signature != SIGNATURE {
        return Err(PngError::NotPng);
    }
    out.write_all(&SIGNATURE)?;
    let mut first = true;
    loop {
        let mut header = [0u8; 8];
        read_exact(avatar, &mut header, "header")?;
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let kind: [u8; 4] = [header[4], header[5], header[6], header[7]];
        let name = String::from_utf8_lossy(&kind).into_owned();
        if length > MAX_CHUNK || !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(PngError::Malformed(format!(
                "a chunk header is invalid ({name:?})"
            )));
        }
        if first && &kind != b"IHDR" {
            return Err(PngError::Malformed("its first chunk is not IHDR".into()));
        }
        first = false;
        if &kind == b"IEND" {
            copy_chunk(avatar, length, kind, &mut io::sink())?;
            write_chunk(out, *b"tEXt", &text_chunk(card))?;
            write_chunk(out, *b"IEND", &[])?;
            return Ok(());
        }
        if &kind == b"tEXt" {
            copy_text_chunk(avatar, length, kind, out)?;
        } else {
            out.write_all(&header)?;
            copy_chunk(avatar, length, kind, out)?;
        }
    }
}

/// Copies a `tEXt` chunk, unless it holds a card (keyword `chara` or
/// `ccv3`): then it is read, checked and dropped.
fn copy_text_chunk(
    avatar: &mut impl Read,
    length: u32,
    kind: [u8; 4],
    out: &mut impl Write,
) -> Result<(), PngError> {
    // A keyword is 1 to 79 bytes and a NUL: read that much at most.
    let peek_len = length.min(80) as usize;
    let mut peek = vec![0u8; peek_len];
    read_exact(avatar, &mut peek, "tEXt")?;
    let keyword = peek.split(|&b| b == 0).next().unwrap_or_default();
    let card = keyword == KEYWORD.as_bytes() || keyword == V3_KEYWORD.as_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&kind);
    crc.update(&peek);
    let rest = length - peek_len as u32;
    if card {
        finish_chunk(avatar, rest, crc, &mut io::sink(), "tEXt")?;
    } else {
        out.write_all(&length.to_be_bytes())?;
        out.write_all(&kind)?;
        out.write_all(&peek)?;
        finish_chunk(avatar, rest, crc, out, "tEXt")?;
    }
    Ok(())
}

/// Copies a chunk's data and CRC, checking the CRC.
fn copy_chunk(
    avatar: &mut impl Read,
    length: u32,
    kind: [u8; 4],
    out: &mut impl Write,
) -> Result<(), PngError> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&kind);
    finish_chunk(avatar, length, crc, out, &String::from_utf8_lossy(&kind))
}

/// Copies the `length` bytes left of a chunk's data and its CRC, which must
/// match `crc` updated with them.
fn finish_chunk(
    avatar: &mut impl Read,
    mut length: u32,
    mut crc: crc32fast::Hasher,
    out: &mut impl Write,
    name: &str,
) -> Result<(), PngError> {
    let mut buf = vec![0u8; 64 * 1024];
    while length > 0 {
        let n = (length as usize).min(buf.len());
        read_exact(avatar, &mut buf[..n], name)?;
        crc.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        length -= n as u32;
    }
    let mut stored = [0u8; 4];
    read_exact(avatar, &mut stored, name)?;
    if u32::from_be_bytes(stored) != crc.finalize() {
        return Err(PngError::BadCrc {
            chunk: name.to_owned(),
        });
    }
    out.write_all(&stored)?;
    Ok(())
}

/// `chara`, NUL, the card's JSON in base64 (ASCII, as tEXt wants Latin-1).
fn text_chunk(card: &str) -> Vec<u8> {
    let mut data = KEYWORD.as_bytes().to_vec();
    data.push(0);
    data.extend(
        base64::engine::general_purpose::STANDARD
            .encode(card.as_bytes())
            .bytes(),
    );
    data
}

fn write_chunk(out: &mut impl Write, kind: [u8; 4], data: &[u8]) -> Result<(), PngError> {
    let length = u32::try_from(data.len())
        .ok()
        .filter(|&n| n <= MAX_CHUNK)
        .ok_or_else(|| PngError::Malformed("the card is too large for a PNG chunk".into()))?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&kind);
    crc.update(data);
    out.write_all(&length.to_be_bytes())?;
    out.write_all(&kind)?;
    out.write_all(data)?;
    out.write_all(&crc.finalize().to_be_bytes())?;
    Ok(())
}

fn read_exact(avatar: &mut impl Read, buf: &mut [u8], name: &str) -> Result<(), PngError> {
    avatar.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => PngError::Truncated(name.to_owned()),
        _ => PngError::Io(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(chunks: &[([u8; 4], &[u8])]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        for (kind, data) in chunks {
            write_chunk(&mut out, *kind, data).unwrap();
        }
        out
    }

    fn chunks_of(bytes: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
        let mut chunks = Vec::new();
        let mut at = 8;
        while at < bytes.len() {
            let length = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = bytes[at + 4..at + 8].try_into().unwrap();
            chunks.push((kind, bytes[at + 8..at + 8 + length].to_vec()));
            at += 12 + length;
        }
        chunks
    }

    #[test]
    fn the_card_replaces_an_earlier_one_before_iend_and_the_rest_is_copied() {
        let avatar = png(&[
            (*b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0]),
            (*b"tEXt", b"chara\0b2xk"),
            (*b"tEXt", b"Comment\0kept"),
            (*b"IDAT", &[1, 2, 3]),
            (*b"IEND", &[]),
        ]);
        let mut out = Vec::new();
        embed(&mut avatar.as_slice(), "{\"spec\":\"chara_card_v2\"}", &mut out).unwrap();
        let chunks = chunks_of(&out);
        let kinds: Vec<&[u8; 4]> = chunks.iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [b"IHDR", b"tEXt", b"IDAT", b"tEXt", b"IEND"]);
        assert_eq!(chunks[1].1, b"Comment\0kept");
        let (keyword, text) = chunks[3].1.split_at(6);
        assert_eq!(keyword, b"chara\0");
        let json = base64::engine::general_purpose::STANDARD.decode(text).unwrap();
        assert_eq!(json, b"{\"spec\":\"chara_card_v2\"}");
    }

    #[test]
    fn what_is_not_a_sound_png_is_refused() {
        let mut out = Vec::new();
        assert!(matches!(
            embed(&mut &b"GIF89a.."[..], "{}", &mut out),
            Err(PngError::NotPng)
        ));
        let mut bad = png(&[(*b"IHDR", &[0; 13]), (*b"IEND", &[])]);
        bad[8 + 8 + 13] ^= 1;
        assert!(matches!(
            embed(&mut bad.as_slice(), "{}", &mut out),
            Err(PngError::BadCrc { .. })
        ));
        let cut = png(&[(*b"IHDR", &[0; 13]), (*b"IEND", &[])]);
        assert!(matches!(
            embed(&mut &cut[..30], "{}", &mut out),
            Err(PngError::Truncated(_))
        ));
        let no_ihdr = png(&[(*b"IDAT", &[0; 3]), (*b"IEND", &[])]);
        assert!(matches!(
            embed(&mut no_ihdr.as_slice(), "{}", &mut out),
            Err(PngError::Malformed(_))
        ));
    }
}
