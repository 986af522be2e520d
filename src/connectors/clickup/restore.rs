//! Restore as a copy: a stored task becomes a new task in its list (Create Task,
//! `POST /list/{list_id}/task`) with its attachments uploaded again (Create Task
//! Attachment), and a stored comment a new comment on its task (Create Task Comment). Only
//! POSTs: nothing at ClickUp is changed or deleted.

use serde_json::{Map, Value, json};

use super::client::{Api, str_of};
use crate::connectors::{RestoreFile, Restored, SourceError};

pub fn restorable(kind: &str) -> Result<(), String> {
    match kind {
        "tasks" | "comments" => Ok(()),
        "workspaces" => Err("ClickUp's API v2 cannot create workspaces".into()),
        "fields" => Err("ClickUp's API v2 cannot create custom field definitions (it only sets values on tasks): \
             make the field again in ClickUp, then restore the tasks that had values in it"
            .into()),
        "spaces" | "folders" | "lists" | "views" => Err(format!(
            "daybook does not restore ClickUp {kind} yet: make it again in ClickUp (its stored settings show how), \
             then restore its tasks"
        )),
        other => Err(format!("{other}: not a ClickUp data type daybook knows")),
    }
}

fn ms(v: &Value) -> Option<i64> {
    str_of(v).parse().ok()
}

/// A custom field's value as the task's JSON gives it, in the form Create Task takes
/// (https://developer.clickup.com/docs/customfields): None when it is unset or of a type
/// whose value a new task cannot be given.
fn field_value(f: &Value) -> Result<Option<Value>, String> {
    let Some(v) = f.get("value").filter(|v| !v.is_null()) else { return Ok(None) };
    let ty = f["type"].as_str().unwrap_or_default();
    Ok(Some(match ty {
        "short_text" | "text" | "email" | "url" | "phone" | "labels" => v.clone(),
        "number" | "currency" | "emoji" => match v {
            Value::String(s) => {
                s.parse::<f64>().map(|n| json!(n)).map_err(|_| "its value is not a number".to_string())?
            }
            other => other.clone(),
        },
        "date" => json!(ms(v).ok_or("the date is not Unix milliseconds")?),
        "checkbox" => json!(matches!(v, Value::Bool(true)) || v.as_str() == Some("true")),
        // Read as the option's orderindex, written as the option's id.
        "drop_down" => {
            if v.is_string() && v.as_str().is_some_and(|s| s.contains('-')) {
                v.clone()
            } else {
                let opts = f["type_config"]["options"].as_array().cloned().unwrap_or_default();
                let pick = opts.iter().find(|o| str_of(&o["orderindex"]) == str_of(v));
                json!(pick.map(|o| str_of(&o["id"])).ok_or("its option is no longer among the field's options")?)
            }
        }
        other => return Err(format!("values of {other} fields cannot be given to a new task")),
    }))
}

pub async fn task(api: &Api<'_>, t: &Value, files: Vec<RestoreFile>) -> Result<Restored, SourceError> {
    let list = str_of(&t["list"]["id"]);
    if list.is_empty() {
        return Err(SourceError::unsupported("restoring a task", "the stored task does not say which list it was in"));
    }
    let mut notes = vec![
        "ClickUp gives the copy a new id, creation time and creator (the token's owner)".to_string(),
        "not copied (the Create Task call cannot set them or they refer to other objects): assignees, watchers, \
         checklists, dependencies, linked tasks, time tracked; comments are records of their own, restored one by one"
            .to_string(),
    ];
    let mut body = Map::new();
    body.insert("name".into(), t["name"].clone());
    match t["markdown_description"].as_str().filter(|s| !s.is_empty()) {
        Some(md) => body.insert("markdown_content".into(), json!(md)),
        None => body.insert("description".into(), json!(str_of(&t["description"]))),
    };
    if let Some(s) = t["status"]["status"].as_str() {
        body.insert("status".into(), json!(s));
    }
    if let Some(p) = t["priority"].get("id").and_then(|p| str_of(p).parse::<i64>().ok()) {
        body.insert("priority".into(), json!(p));
    }
    for key in ["due_date", "start_date", "time_estimate"] {
        if let Some(v) = ms(&t[key]) {
            body.insert(key.into(), json!(v));
        }
    }
    if t["points"].is_number() {
        body.insert("points".into(), t["points"].clone());
    }
    let tags: Vec<Value> = t["tags"].as_array().into_iter().flatten().filter_map(|g| g.get("name").cloned()).collect();
    body.insert("tags".into(), Value::Array(tags));
    let mut fields = Vec::new();
    for f in t["custom_fields"].as_array().into_iter().flatten() {
        match field_value(f) {
            Ok(Some(v)) => fields.push(json!({ "id": f["id"], "value": v })),
            Ok(None) => {}
            Err(why) => notes.push(format!("custom field {:?} not copied: {why}", str_of(&f["name"]))),
        }
    }
    body.insert("custom_fields".into(), Value::Array(fields));
    body.insert("notify_all".into(), json!(false));
    if let Some(p) = t["parent"].as_str() {
        notes.push(format!("it was a subtask of task {p}; the copy is a task of its own"));
    }
    let made = api.create_task(&list, &Value::Object(body)).await?;
    let new_id = str_of(&made["id"]);
    if new_id.is_empty() {
        return Err(SourceError::bad_data("Create Task", "the answer has no id of the new task"));
    }
    // The task exists from here on: a failed upload is a note, never an error that would
    // lose the copy's id (and make a second copy on the next try).
    let mut uploaded = 0;
    for f in files {
        match api.upload(&new_id, &f.name, &f.bytes).await {
            Ok(_) => uploaded += 1,
            Err(e) => notes.push(format!("attachment {:?} not uploaded to the copy: {e}", f.name)),
        }
    }
    if t["archived"].as_bool() == Some(true) {
        notes.push("the task was archived: the copy is not".into());
    }
    Ok(Restored { new_id, files_uploaded: uploaded, notes })
}

pub async fn comment(api: &Api<'_>, c: &Value) -> Result<Restored, SourceError> {
    let task = str_of(&c["task_id"]);
    if task.is_empty() {
        return Err(SourceError::unsupported(
            "restoring a comment",
            "the stored comment does not say which task it was on",
        ));
    }
    let when = super::client::ms_to_rfc3339(&c["date"]).unwrap_or_else(|| "an unknown time".into());
    let who = c["user"]["username"].as_str().unwrap_or("someone");
    let text =
        format!("{}\n\n(restored from a daybook backup: first written by {who} at {when})", str_of(&c["comment_text"]));
    let made = api.create_comment(&task, &json!({ "comment_text": text, "notify_all": false })).await.map_err(|e| {
        e.about(format!("adding the comment to task {task} (restore the task first if it was deleted)"))
    })?;
    Ok(Restored {
        new_id: str_of(&made["id"]),
        files_uploaded: 0,
        notes: vec![
            "ClickUp writes the copy as the token's owner, now, as plain text (formatting, mentions and reactions \
             are not copied); the original author and time are in its text"
                .into(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::field_value;
    use serde_json::json;

    #[test]
    fn field_values_are_written_in_the_form_create_task_takes() {
        let drop = json!({"type": "drop_down", "value": 1, "type_config": {"options": [
            {"id": "a-0", "orderindex": 0}, {"id": "b-1", "orderindex": 1}]}});
        assert_eq!(field_value(&drop).unwrap(), Some(json!("b-1")), "orderindex read, option id written");
        assert_eq!(field_value(&json!({"type": "number", "value": "8.5"})).unwrap(), Some(json!(8.5)));
        assert_eq!(
            field_value(&json!({"type": "date", "value": "1508369194377"})).unwrap(),
            Some(json!(1508369194377_i64))
        );
        assert_eq!(field_value(&json!({"type": "checkbox", "value": "true"})).unwrap(), Some(json!(true)));
        assert_eq!(field_value(&json!({"type": "short_text"})).unwrap(), None, "unset stays unset");
        assert!(field_value(&json!({"type": "users", "value": [{"id": 1}]})).is_err(), "said, not guessed");
        let gone = json!({"type": "drop_down", "value": 5, "type_config": {"options": []}});
        assert!(field_value(&gone).is_err());
    }
}
