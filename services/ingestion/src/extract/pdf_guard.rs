//! What a PDF may cost before pdf-extract sees it. lopdf inflates object and xref streams
//! while loading and pdf-extract inflates a content stream again at every use, follows
//! form XObjects recursively and walks `/Parent` chains recursively, all without limits;
//! these checks bound each of those first, so a bomb fails with a reason instead of
//! exhausting memory or the stack.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use pdf_extract::content::Content;
use pdf_extract::{Dictionary, Document, LoadOptions, Object, ObjectId, Stream};

use super::inflate::{Budget, DecodeLimit, check_blind_zlib, pdf_decode};
use super::limits::{
    MAX_PDF_CONTENT_WORK, MAX_PDF_FORM_DEPTH, MAX_PDF_TREE_DEPTH, MAX_STREAM_BYTES,
};

const MIB: u64 = 1024 * 1024;

/// Work counted for each use of a stream besides its bytes, so millions of uses of a tiny
/// form still add up.
const USE_OVERHEAD: u64 = 1024;

/// The dictionary key marking an object stream refused while loading (see
/// [`load_options`]).
const REFUSED: &[u8] = b"DaRefusedStream";

/// Why a PDF was refused before text extraction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdfLimit {
    /// A stream, or all of them, decode past a cap.
    #[error(transparent)]
    Decode(#[from] DecodeLimit),
    /// Its pages use more content than [`MAX_PDF_CONTENT_WORK`], counting repeats.
    #[error(
        "its pages use more than {} MiB of content, counting a stream at every use (the per-document cap)",
        MAX_PDF_CONTENT_WORK / MIB
    )]
    ContentWork,
    /// Forms nest past [`MAX_PDF_FORM_DEPTH`], or one draws itself.
    #[error("form XObjects nest deeper than {MAX_PDF_FORM_DEPTH} levels (or a form draws itself)")]
    FormDepth,
    /// The `/Parent` chain is longer than [`MAX_PDF_TREE_DEPTH`], or loops.
    #[error("the page tree is deeper than {MAX_PDF_TREE_DEPTH} levels (or has a cycle)")]
    TreeDepth,
}

/// Before loading: every stream in the raw bytes that looks like zlib is inflated (through
/// nested layers) under the per-stream cap and the document budget, keeping nothing. This
/// covers the streams lopdf inflates during loading (object and xref streams), whose
/// filters are not known until it parses them.
pub fn check_raw(bytes: &[u8], budget: &Budget) -> Result<(), PdfLimit> {
    let mut from = 0;
    while let Some(found) = find(bytes, b"stream", from) {
        from = found + b"stream".len();
        if found >= 3 && &bytes[found - 3..found] == b"end" {
            continue;
        }
        let mut start = from;
        if bytes.get(start) == Some(&b'\r') {
            start += 1;
        }
        if bytes.get(start) == Some(&b'\n') {
            start += 1;
        }
        if let Some(data) = bytes.get(start..) {
            check_blind_zlib(data, budget)?;
        }
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|at| at + from)
}

/// Load options whose filter measures every object stream (with its real filters, as
/// lopdf parsed them) before lopdf expands it, and empties one past
/// [`MAX_STREAM_BYTES`], marking it for [`check_loaded`] to refuse.
pub fn load_options() -> LoadOptions {
    LoadOptions::with_filter(measure_object_streams)
}

/// The [`LoadOptions`] filter; a plain `fn`, since lopdf may call it from several threads.
fn measure_object_streams(id: ObjectId, object: &mut Object) -> Option<(ObjectId, Object)> {
    match object {
        Object::Stream(stream) => {
            if stream.dict.has_type(b"ObjStm") {
                let filters: Vec<Vec<u8>> = stream
                    .filters()
                    .map(|filters| filters.into_iter().map(<[u8]>::to_vec).collect())
                    .unwrap_or_default();
                let budget = Budget::new(MAX_STREAM_BYTES);
                if pdf_decode(&filters, &stream.content, &budget).is_err() {
                    stream.dict.remove(b"Type");
                    stream.dict.set(REFUSED, true);
                    stream.content.clear();
                }
            }
            // The caller keeps the object it passed in; only objects inside object streams
            // (never streams) are taken from the returned value.
            Some((id, Object::Null))
        }
        other => Some((id, other.clone())),
    }
}

/// After loading: refuses a document whose object streams were refused while loading,
/// whose page tree loops, or whose pages would make pdf-extract process more than
/// [`MAX_PDF_CONTENT_WORK`] bytes of content (every use of a stream counted, forms
/// followed to [`MAX_PDF_FORM_DEPTH`] levels).
pub fn check_loaded(document: &Document) -> Result<(), PdfLimit> {
    if document
        .objects
        .values()
        .any(|object| matches!(object, Object::Stream(stream) if stream.dict.has(REFUSED)))
    {
        return Err(DecodeLimit::Stream.into());
    }
    let mut walk = Walk {
        document,
        budget: Budget::document(),
        sizes: HashMap::new(),
        names: HashMap::new(),
        work: 0,
    };
    for page_id in document.get_pages().into_values() {
        let Ok(page) = document.get_dictionary(page_id) else {
            continue;
        };
        let resources = inherited(document, page, b"Resources", |o| o.as_dict().is_ok())?
            .and_then(|o| o.as_dict().ok());
        inherited(document, page, b"MediaBox", |o| o.as_array().is_ok())?;
        for font_stream in font_streams(document, resources) {
            walk.use_stream(font_stream)?;
        }
        for content in document.get_page_contents(page_id) {
            walk.use_stream(content)?;
            walk.forms(content, resources, 0)?;
        }
    }
    Ok(())
}

/// pdf-extract's `get_inherited`, bounded: the value of `key` on `page` or the nearest
/// ancestor having one that `fits`, or an error past [`MAX_PDF_TREE_DEPTH`] ancestors.
fn inherited<'a>(
    document: &'a Document,
    page: &'a Dictionary,
    key: &[u8],
    fits: impl Fn(&Object) -> bool,
) -> Result<Option<&'a Object>, PdfLimit> {
    let mut node = page;
    for _ in 0..MAX_PDF_TREE_DEPTH {
        if let Some(value) = deref(document, node.get(key).ok())
            && fits(value)
        {
            return Ok(Some(value));
        }
        let parent = node.get(b"Parent").and_then(Object::as_reference);
        match parent.and_then(|id| document.get_dictionary(id)) {
            Ok(parent) => node = parent,
            Err(_) => return Ok(None),
        }
    }
    Err(PdfLimit::TreeDepth)
}

/// `object`, or what it refers to (one level, as pdf-extract resolves).
fn deref<'a>(document: &'a Document, object: Option<&'a Object>) -> Option<&'a Object> {
    match object? {
        Object::Reference(id) => document.get_object(*id).ok(),
        direct => Some(direct),
    }
}

/// The streams of the fonts in `resources` (font programs, ToUnicode maps, descendant
/// fonts' programs), which pdf-extract reads again on every page that uses them.
fn font_streams(document: &Document, resources: Option<&Dictionary>) -> Vec<ObjectId> {
    let Some(fonts) = resources
        .and_then(|r| deref(document, r.get(b"Font").ok()))
        .and_then(|f| f.as_dict().ok())
    else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    // (object, depth): font → descriptor or descendants → program; nothing deeper matters.
    let mut stack: Vec<(&Object, usize)> = fonts.iter().map(|(_, font)| (font, 0)).collect();
    while let Some((object, depth)) = stack.pop() {
        if depth > 3 {
            continue;
        }
        let object = match object {
            Object::Reference(id) => {
                if !seen.insert(*id) {
                    continue;
                }
                match document.get_object(*id) {
                    Ok(Object::Stream(_)) => {
                        found.push(*id);
                        continue;
                    }
                    Ok(object) => object,
                    Err(_) => continue,
                }
            }
            direct => direct,
        };
        match object {
            Object::Dictionary(dict) => stack.extend(
                dict.iter()
                    .filter(|(key, _)| key.as_slice() != b"Parent")
                    .map(|(_, value)| (value, depth + 1)),
            ),
            Object::Array(items) => stack.extend(items.iter().map(|item| (item, depth + 1))),
            _ => {}
        }
    }
    found
}

/// The page walk's state: decoded sizes and form names per stream, and the work so far.
struct Walk<'a> {
    document: &'a Document,
    budget: Budget,
    sizes: HashMap<ObjectId, u64>,
    names: HashMap<ObjectId, Rc<[Vec<u8>]>>,
    work: u64,
}

impl<'a> Walk<'a> {
    /// Counts one use of stream `id` (its decoded size, measured once).
    fn use_stream(&mut self, id: ObjectId) -> Result<(), PdfLimit> {
        let size = match self.sizes.get(&id) {
            Some(size) => *size,
            None => {
                let size = match self.stream(id) {
                    Some(stream) => self.decode(stream)?.len() as u64,
                    None => 0,
                };
                self.sizes.insert(id, size);
                size
            }
        };
        self.work = self.work.saturating_add(size + USE_OVERHEAD);
        if self.work > MAX_PDF_CONTENT_WORK {
            return Err(PdfLimit::ContentWork);
        }
        Ok(())
    }

    fn stream(&self, id: ObjectId) -> Option<&'a Stream> {
        self.document.get_object(id).ok()?.as_stream().ok()
    }

    fn decode(&self, stream: &Stream) -> Result<Vec<u8>, DecodeLimit> {
        let filters = stream.filters().unwrap_or_default();
        pdf_decode(&filters, &stream.content, &self.budget)
    }

    /// Follows the `Do` operators of stream `id` into the XObjects they draw, as
    /// pdf-extract does, counting each use; `depth` is the form nesting so far.
    fn forms(
        &mut self,
        id: ObjectId,
        resources: Option<&'a Dictionary>,
        depth: usize,
    ) -> Result<(), PdfLimit> {
        let names = self.do_names(id)?;
        if names.is_empty() {
            return Ok(());
        }
        let xobjects = resources
            .and_then(|r| deref(self.document, r.get(b"XObject").ok()))
            .and_then(|x| x.as_dict().ok());
        for name in names.iter() {
            let Some(Object::Reference(form)) = xobjects.and_then(|x| x.get(name).ok()) else {
                continue;
            };
            let Some(stream) = self.stream(*form) else {
                continue;
            };
            if depth + 1 > MAX_PDF_FORM_DEPTH {
                return Err(PdfLimit::FormDepth);
            }
            self.use_stream(*form)?;
            let inner = deref(self.document, stream.dict.get(b"Resources").ok())
                .and_then(|r| r.as_dict().ok())
                .or(resources);
            self.forms(*form, inner, depth + 1)?;
        }
        Ok(())
    }

    /// The names stream `id` draws with `Do`, parsed once per stream.
    fn do_names(&mut self, id: ObjectId) -> Result<Rc<[Vec<u8>]>, PdfLimit> {
        if let Some(names) = self.names.get(&id) {
            return Ok(names.clone());
        }
        let names: Rc<[Vec<u8>]> = match self.stream(id) {
            Some(stream) => {
                let content = self.decode(stream)?;
                Content::decode(&content)
                    .map(|content| {
                        content
                            .operations
                            .into_iter()
                            .filter(|op| op.operator == "Do")
                            .filter_map(|op| {
                                op.operands.first()?.as_name().ok().map(<[u8]>::to_vec)
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            }
            None => Rc::from(Vec::new()),
        };
        self.names.insert(id, names.clone());
        Ok(names)
    }
}
