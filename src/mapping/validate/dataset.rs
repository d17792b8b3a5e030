//! `dataset.toml`: the dataset-wide settings, checked, with defaults filled in.

use crate::mapping::load::{Loaded, MappingError};
use crate::mapping::rules::check_output_name;
use crate::mapping::{Dataset, DEFAULT_FIRESTORE_ID_FIELD, DEFAULT_ID_KEY};

pub(super) fn compile_dataset(loaded: &Loaded, errors: &mut Vec<MappingError>) -> Dataset {
    let mut d = Dataset {
        name: loaded
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ..Dataset::default()
    };
    let Some((file, spec)) = &loaded.dataset else {
        return d;
    };
    if let Some(k) = &spec.id_key {
        if k.get_ref().is_empty() {
            errors.push(file.error(
                k.span(),
                "`id_key` is empty",
                format!("give any non-empty string, or remove the key to use the default \"{DEFAULT_ID_KEY}\""),
            ));
        }
        d.id_key = k.get_ref().clone();
    }
    if let Some(f) = &spec.field_names {
        d.field_names = *f.get_ref();
    }
    if let Some(r) = &spec.references {
        d.references = *r.get_ref();
    }
    if let Some(f) = &spec.firestore_id_field {
        if let Err(e) = check_output_name(f.get_ref()) {
            errors.push(file.error(
                f.span(),
                format!("`firestore_id_field`: {e}"),
                format!("give a plain field name such as \"{DEFAULT_FIRESTORE_ID_FIELD}\""),
            ));
        }
        if f.get_ref() == "_id" {
            errors.push(file.error(
                f.span(),
                "`firestore_id_field` cannot be `_id`",
                "pick another name",
            ));
        }
        d.firestore_id_field = f.get_ref().clone();
    }
    d
}
