//! Reading a crate's source: its module tree (inline and in files), and an
//! index of what each module declares and imports, its free functions, the
//! methods of its types, and the handlers to start from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use syn::{ImplItem, Item, UseTree};

use crate::Site;

/// What a name declared in a module is.
#[derive(Clone, Debug)]
pub(super) enum Decl {
    /// A module, by index.
    Mod(usize),
    /// A free function.
    Fn,
    /// A struct, enum, union or trait: a type whose methods may be indexed.
    Type,
    /// `type Name = path;`: the path as written in the module.
    Alias(Vec<String>),
    /// A const, static, macro or alias to something that is not a path.
    Other,
}

/// One module of the crate.
pub(super) struct Module {
    /// `["crate", "bank"]`.
    pub path: Vec<String>,
    pub parent: Option<usize>,
    /// The file that holds it, relative to the crate's directory.
    pub file: PathBuf,
    /// What it declares, by name.
    pub decls: HashMap<String, Decl>,
    /// What its `use` items bring in, by name: the path as written.
    pub uses: HashMap<String, Vec<String>>,
    /// Its glob imports, as written (`use std::fs::*;` gives `["std", "fs"]`).
    pub globs: Vec<Vec<String>>,
}

/// A function body to walk: a free function, a method, or a handler.
#[derive(Clone)]
pub(super) struct FnDef {
    /// How a chain names it: `Account::deposit`, `helpers::stamp`.
    pub name: String,
    /// The module its paths resolve in.
    pub module: usize,
    /// The full path of the impl's self type, for a method.
    pub self_ty: Option<Vec<String>>,
    /// The names of its parameters, which hide a glob-imported function.
    pub params: Vec<String>,
    pub block: syn::Block,
}

/// A handler the check starts from, with the site it runs in.
pub(super) struct Root {
    pub def: FnDef,
    pub site: Site,
    /// Its key in [`Crate::methods`], so a handler reached from another of
    /// the same site is not judged twice.
    pub key: Vec<String>,
}

/// One crate root (`src/lib.rs`, `src/main.rs`, a test file) and everything under it.
pub(super) struct Crate {
    pub modules: Vec<Module>,
    /// Free functions, by full path.
    pub fns: HashMap<Vec<String>, FnDef>,
    /// Methods, by the full path of their type and their name.
    pub methods: HashMap<Vec<String>, FnDef>,
    pub roots: Vec<Root>,
    /// Files that were named but could not be read or parsed.
    pub unread: Vec<(PathBuf, String)>,
}

/// Where a module's child modules' files are, and which file it is in.
struct Place<'a> {
    dir: &'a Path,
    /// The module's own directory for `mod x;`.
    child_dir: PathBuf,
    file: PathBuf,
}

impl Crate {
    /// Reads the crate rooted at `root` (a path relative to `dir`).
    pub(super) fn load(dir: &Path, root: &Path) -> Crate {
        let mut krate = Crate {
            modules: Vec::new(),
            fns: HashMap::new(),
            methods: HashMap::new(),
            roots: Vec::new(),
            unread: Vec::new(),
        };
        // Items of each module, kept to index impls once every module is known.
        let mut bodies: Vec<(usize, Vec<Item>)> = Vec::new();
        match parse(&dir.join(root)) {
            Ok(file) => {
                let child_dir = root.parent().map(Path::to_path_buf).unwrap_or_default();
                let place = Place {
                    dir,
                    child_dir,
                    file: root.to_path_buf(),
                };
                krate.module(vec!["crate".to_owned()], None, file.items, &place, &mut bodies);
            }
            Err(err) => krate.unread.push((root.to_path_buf(), err)),
        }
        for (module, items) in &bodies {
            krate.index(*module, items);
        }
        krate
    }

    /// Adds a module and, recursively, its children; returns its index.
    fn module(
        &mut self,
        path: Vec<String>,
        parent: Option<usize>,
        items: Vec<Item>,
        place: &Place<'_>,
        bodies: &mut Vec<(usize, Vec<Item>)>,
    ) -> usize {
        let index = self.modules.len();
        self.modules.push(Module {
            path: path.clone(),
            parent,
            file: place.file.clone(),
            decls: HashMap::new(),
            uses: HashMap::new(),
            globs: Vec::new(),
        });
        for item in &items {
            let (name, decl) = match item {
                Item::Use(item) => {
                    let module = &mut self.modules[index];
                    use_tree(&item.tree, Vec::new(), &mut module.uses, &mut module.globs);
                    continue;
                }
                Item::ExternCrate(item) => {
                    let name = item.rename.as_ref().map_or(&item.ident, |(_, rename)| rename);
                    let target = vec![item.ident.to_string()];
                    self.modules[index].uses.insert(name.to_string(), target);
                    continue;
                }
                Item::Mod(item) => {
                    let name = item.ident.to_string();
                    let mut child_path = path.clone();
                    child_path.push(name.clone());
                    let child = match &item.content {
                        Some((_, inner)) => {
                            let child_place = Place {
                                dir: place.dir,
                                child_dir: place.child_dir.join(&name),
                                file: place.file.clone(),
                            };
                            Some(self.module(child_path, Some(index), inner.clone(), &child_place, bodies))
                        }
                        None => self.module_file(child_path, index, item, place, bodies),
                    };
                    match child {
                        Some(child) => (name, Decl::Mod(child)),
                        None => (name, Decl::Other),
                    }
                }
                Item::Fn(item) => (item.sig.ident.to_string(), Decl::Fn),
                Item::Struct(item) => (item.ident.to_string(), Decl::Type),
                Item::Enum(item) => (item.ident.to_string(), Decl::Type),
                Item::Union(item) => (item.ident.to_string(), Decl::Type),
                Item::Trait(item) => (item.ident.to_string(), Decl::Type),
                Item::Type(item) => {
                    let decl = match &*item.ty {
                        syn::Type::Path(ty) if ty.qself.is_none() => Decl::Alias(path_names(&ty.path)),
                        _ => Decl::Other,
                    };
                    (item.ident.to_string(), decl)
                }
                Item::Const(item) => (item.ident.to_string(), Decl::Other),
                Item::Static(item) => (item.ident.to_string(), Decl::Other),
                Item::Macro(item) => match &item.ident {
                    Some(ident) => (ident.to_string(), Decl::Other),
                    None => continue,
                },
                _ => continue,
            };
            self.modules[index].decls.insert(name, decl);
        }
        bodies.push((index, items));
        index
    }

    /// `mod name;`: the file `name.rs` or `name/mod.rs` beside the parent's
    /// children, or the one `#[path = "…"]` names.
    fn module_file(
        &mut self,
        path: Vec<String>,
        parent: usize,
        item: &syn::ItemMod,
        place: &Place<'_>,
        bodies: &mut Vec<(usize, Vec<Item>)>,
    ) -> Option<usize> {
        let name = item.ident.to_string();
        let attr_path = item.attrs.iter().find_map(|attr| match &attr.meta {
            syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(lit),
                    ..
                }) => Some(lit.value()),
                _ => None,
            },
            _ => None,
        });
        let candidates: Vec<(PathBuf, PathBuf)> = match attr_path {
            Some(relative) => {
                let base = place.file.parent().map(Path::to_path_buf).unwrap_or_default();
                let file = base.join(relative);
                let child_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
                vec![(file, child_dir)]
            }
            None => vec![
                (
                    place.child_dir.join(format!("{name}.rs")),
                    place.child_dir.join(&name),
                ),
                (
                    place.child_dir.join(&name).join("mod.rs"),
                    place.child_dir.join(&name),
                ),
            ],
        };
        let (file, child_dir) = candidates
            .into_iter()
            .find(|(file, _)| place.dir.join(file).is_file())?;
        match parse(&place.dir.join(&file)) {
            Ok(parsed) => {
                let child_place = Place {
                    dir: place.dir,
                    child_dir,
                    file,
                };
                Some(self.module(path, Some(parent), parsed.items, &child_place, bodies))
            }
            Err(err) => {
                self.unread.push((file, err));
                None
            }
        }
    }

    /// Indexes a module's free functions and impl methods, and finds the
    /// handlers of its `#[entity]` and `#[view]` impls.
    fn index(&mut self, module: usize, items: &[Item]) {
        let module_path = self.modules[module].path.clone();
        let short = |names: &[String]| names.iter().skip(1).cloned().collect::<Vec<_>>().join("::");
        for item in items {
            match item {
                Item::Fn(item) => {
                    let mut key = module_path.clone();
                    key.push(item.sig.ident.to_string());
                    let def = FnDef {
                        name: short(&key),
                        module,
                        self_ty: None,
                        params: params(&item.sig),
                        block: (*item.block).clone(),
                    };
                    self.fns.insert(key, def);
                }
                Item::Impl(item) => {
                    let syn::Type::Path(ty) = &*item.self_ty else {
                        continue;
                    };
                    let written = path_names(&ty.path);
                    let mut self_ty = super::resolve::resolve(self, module, &written);
                    // Only the crate's own types have inherent impls: a name
                    // that resolves nowhere (a type behind `cfg`, a fixture
                    // without it) is taken as the module's.
                    if self_ty.first().is_none_or(|first| first != "crate") {
                        self_ty = module_path.clone();
                        self_ty.extend(written);
                    }
                    let kind = item
                        .attrs
                        .iter()
                        .filter_map(|attr| attr.path().segments.last())
                        .find_map(|segment| match segment.ident.to_string().as_str() {
                            "entity" => Some(true),
                            "view" => Some(false),
                            _ => None,
                        });
                    let type_name = self_ty.last().cloned().unwrap_or_default();
                    for impl_item in &item.items {
                        let ImplItem::Fn(method) = impl_item else { continue };
                        let mut key = self_ty.clone();
                        key.push(method.sig.ident.to_string());
                        let def = FnDef {
                            name: format!("{type_name}::{}", method.sig.ident),
                            module,
                            self_ty: Some(self_ty.clone()),
                            params: params(&method.sig),
                            block: method.block.clone(),
                        };
                        let marker = |name: &str| method.attrs.iter().any(|a| a.path().is_ident(name));
                        let site = match kind {
                            Some(true) if marker("handle") => Some(Site::Handle),
                            Some(true) if marker("apply") => Some(Site::Apply),
                            Some(false) if marker("on") => Some(Site::ViewOn),
                            _ => None,
                        };
                        if let Some(site) = site {
                            self.roots.push(Root {
                                def: def.clone(),
                                site,
                                key: key.clone(),
                            });
                        }
                        self.methods.insert(key, def);
                    }
                }
                _ => {}
            }
        }
    }
}

fn parse(file: &Path) -> Result<syn::File, String> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    syn::parse_file(&text).map_err(|e| e.to_string())
}

/// The names a parameter list binds.
fn params(sig: &syn::Signature) -> Vec<String> {
    sig.inputs
        .iter()
        .filter_map(|arg| match arg {
            syn::FnArg::Typed(pat) => match &*pat.pat {
                syn::Pat::Ident(ident) => Some(ident.ident.to_string()),
                _ => None,
            },
            syn::FnArg::Receiver(_) => None,
        })
        .collect()
}

pub(super) fn path_names(path: &syn::Path) -> Vec<String> {
    path.segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect()
}

/// The names a `use` tree brings in, each with its path as written, and its globs.
pub(super) fn use_tree(
    tree: &UseTree,
    mut prefix: Vec<String>,
    uses: &mut HashMap<String, Vec<String>>,
    globs: &mut Vec<Vec<String>>,
) {
    match tree {
        UseTree::Path(path) => {
            prefix.push(path.ident.to_string());
            use_tree(&path.tree, prefix, uses, globs);
        }
        UseTree::Name(name) if name.ident == "self" => {
            if let Some(last) = prefix.last().cloned() {
                uses.insert(last, prefix);
            }
        }
        UseTree::Name(name) => {
            prefix.push(name.ident.to_string());
            uses.insert(name.ident.to_string(), prefix);
        }
        UseTree::Rename(rename) => {
            if rename.ident != "self" {
                prefix.push(rename.ident.to_string());
            }
            if rename.rename != "_" {
                uses.insert(rename.rename.to_string(), prefix);
            }
        }
        UseTree::Group(group) => {
            for tree in &group.items {
                use_tree(tree, prefix.clone(), uses, globs);
            }
        }
        UseTree::Glob(_) => globs.push(prefix),
    }
}
