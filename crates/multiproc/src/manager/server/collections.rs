//! The built-in collections: dict, list and namespace.

use std::collections::{BTreeMap, HashMap};

use crate::manager::protocol::RemoteError;
use crate::manager::value::DataValue;

use super::call::{arg, incr, index, int_arg, len_value, opt, ordered, pairs_of, unknown};
use super::table::type_err;

pub(super) fn call_dict(
    map: &mut HashMap<DataValue, (u64, DataValue)>,
    seq: &mut u64,
    method: &str,
    args: &[DataValue],
) -> Result<DataValue, RemoteError> {
    let mut insert = |map: &mut HashMap<DataValue, (u64, DataValue)>,
                      k: DataValue,
                      v: DataValue| match map.get_mut(&k) {
        Some(slot) => Some(std::mem::replace(&mut slot.1, v)),
        None => {
            *seq += 1;
            map.insert(k, (*seq, v));
            None
        }
    };
    Ok(match method {
        "get" => opt(map.get(arg(args, 0)?).map(|e| e.1.clone())),
        "getitem" => map
            .get(arg(args, 0)?)
            .map(|e| e.1.clone())
            .ok_or(RemoteError::Key)?,
        "setitem" | "insert" => opt(insert(map, arg(args, 0)?.clone(), arg(args, 1)?.clone())),
        "delitem" => map
            .remove(arg(args, 0)?)
            .map(|e| e.1)
            .ok_or(RemoteError::Key)?,
        "pop" => opt(map.remove(arg(args, 0)?).map(|e| e.1)),
        "popitem" => {
            let last = map
                .iter()
                .max_by_key(|(_, (s, _))| *s)
                .map(|(k, _)| k.clone())
                .ok_or(RemoteError::Key)?;
            let (_, v) = map.remove(&last).ok_or(RemoteError::Key)?;
            DataValue::List(vec![last, v])
        }
        "contains" => DataValue::Bool(map.contains_key(arg(args, 0)?)),
        "len" => len_value(map.len()),
        "keys" => DataValue::List(ordered(map).into_iter().map(|(k, _)| k.clone()).collect()),
        "values" => DataValue::List(ordered(map).into_iter().map(|(_, v)| v.clone()).collect()),
        "items" | "copy" => DataValue::Map(
            ordered(map)
                .into_iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        "update" => {
            for (k, v) in pairs_of(arg(args, 0)?)? {
                insert(map, k, v);
            }
            DataValue::Null
        }
        "clear" => {
            map.clear();
            DataValue::Null
        }
        "setdefault" => {
            let k = arg(args, 0)?;
            match map.get(k) {
                Some(e) => e.1.clone(),
                None => {
                    let d = arg(args, 1)?.clone();
                    insert(map, k.clone(), d.clone());
                    d
                }
            }
        }
        "incr" => {
            let k = arg(args, 0)?;
            let delta = arg(args, 1)?;
            if !map.contains_key(k) {
                insert(map, k.clone(), DataValue::Int(0));
            }
            let slot = map.get_mut(k).ok_or(RemoteError::Key)?;
            incr(&mut slot.1, delta)?
        }
        _ => return Err(unknown("dict", method)),
    })
}

pub(super) fn call_list(
    list: &mut Vec<DataValue>,
    method: &str,
    args: &[DataValue],
) -> Result<DataValue, RemoteError> {
    Ok(match method {
        "append" => {
            list.push(arg(args, 0)?.clone());
            DataValue::Null
        }
        "extend" => {
            let items = arg(args, 0)?
                .as_list()
                .ok_or_else(|| type_err("extend takes a list"))?;
            list.extend_from_slice(items);
            DataValue::Null
        }
        "getitem" => list[index(list.len(), int_arg(args, 0)?)?].clone(),
        "setitem" => {
            let i = index(list.len(), int_arg(args, 0)?)?;
            std::mem::replace(&mut list[i], arg(args, 1)?.clone())
        }
        "delitem" => {
            let i = index(list.len(), int_arg(args, 0)?)?;
            list.remove(i)
        }
        "pop" => {
            let i = match args.first() {
                None | Some(DataValue::Null) => -1,
                Some(_) => int_arg(args, 0)?,
            };
            let i = index(list.len(), i)?;
            list.remove(i)
        }
        "insert" => {
            let len = list.len() as i64;
            let i = int_arg(args, 0)?;
            let i = if i < 0 { (i + len).max(0) } else { i.min(len) };
            list.insert(i as usize, arg(args, 1)?.clone());
            DataValue::Null
        }
        "remove" => {
            let v = arg(args, 0)?;
            let i = list
                .iter()
                .position(|x| x == v)
                .ok_or_else(|| RemoteError::Value("list.remove(x): x not in list".into()))?;
            list.remove(i);
            DataValue::Null
        }
        "index" => {
            let v = arg(args, 0)?;
            len_value(
                list.iter()
                    .position(|x| x == v)
                    .ok_or_else(|| RemoteError::Value("x not in list".into()))?,
            )
        }
        "count" => {
            let v = arg(args, 0)?;
            len_value(list.iter().filter(|x| *x == v).count())
        }
        "contains" => DataValue::Bool(list.contains(arg(args, 0)?)),
        "len" => len_value(list.len()),
        "tolist" => DataValue::List(list.clone()),
        "clear" => {
            list.clear();
            DataValue::Null
        }
        "reverse" => {
            list.reverse();
            DataValue::Null
        }
        "sort" => {
            list.sort();
            DataValue::Null
        }
        "incr" => {
            let i = index(list.len(), int_arg(args, 0)?)?;
            incr(&mut list[i], arg(args, 1)?)?
        }
        _ => return Err(unknown("list", method)),
    })
}

pub(super) fn call_ns(
    ns: &mut BTreeMap<String, DataValue>,
    method: &str,
    args: &[DataValue],
) -> Result<DataValue, RemoteError> {
    let name = |i| {
        arg(args, i)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| type_err("attribute names are strings"))
    };
    Ok(match method {
        "getattr" => ns.get(&name(0)?).cloned().ok_or(RemoteError::Key)?,
        "get" => opt(ns.get(&name(0)?).cloned()),
        "setattr" => {
            ns.insert(name(0)?, arg(args, 1)?.clone());
            DataValue::Null
        }
        "delattr" => ns.remove(&name(0)?).ok_or(RemoteError::Key)?,
        "contains" => DataValue::Bool(ns.contains_key(&name(0)?)),
        "items" => DataValue::Map(
            ns.iter()
                .map(|(k, v)| (DataValue::Str(k.clone()), v.clone()))
                .collect(),
        ),
        "incr" => {
            let slot = ns.entry(name(0)?).or_insert(DataValue::Int(0));
            incr(slot, arg(args, 1)?)?
        }
        _ => return Err(unknown("Namespace", method)),
    })
}
