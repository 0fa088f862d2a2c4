//! Attachments over real HTTP: an upload streamed as the request body, sent with a message (by
//! the form a script or the page posts), downloaded by the other person with headers that never
//! let a file act as a page of this site, and refused to everyone else, as 404.

use crate::common::{Person, TestServer, post, sign_up, storages, temp_sqlite_url};
use reqwest::StatusCode;
use reqwest::header::{
    CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use serde_json::Value;

/// An 8 × 4 PNG.
fn png() -> Vec<u8> {
    let image = image::RgbImage::from_pixel(8, 4, image::Rgb([200, 30, 30]));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

impl Person {
    async fn upload(&self, server: &TestServer, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        let response = self
            .client
            .post(server.url("/api/uploads"))
            .query(&[("name", name)])
            .header("accept", "application/json")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn send_files(
        &self,
        server: &TestServer,
        to: i64,
        body: &str,
        client_id: &str,
        files: &[i64],
    ) -> (StatusCode, Value) {
        let to = to.to_string();
        let ids: Vec<(String, String)> =
            files.iter().enumerate().map(|(i, id)| (format!("attachments[{i}]"), id.to_string())).collect();
        let mut form: Vec<(&str, &str)> = vec![("recipient_id", &to), ("body", body), ("client_id", client_id)];
        form.extend(ids.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let (status, json, _) = post(&self.client, server.url("/api/messages/send"), &form).await;
        (status, json)
    }
}

/// A server keeping its files in `storage`.
async fn server_on(storage: server::config::StorageConfig) -> TestServer {
    TestServer::start_configured(&temp_sqlite_url(), |config| config.storage = storage).await
}

#[tokio::test]
async fn a_file_goes_up_as_a_stream_and_down_only_to_the_conversation() {
    for storage in storages() {
        conversation_files(server_on(storage).await).await;
    }
}

async fn conversation_files(server: TestServer) {
    let (ann, ben, eve) = (sign_up(&server, "Ann").await, sign_up(&server, "Ben").await, sign_up(&server, "Eve").await);

    let (status, image) = ann.upload(&server, "red.png", png()).await;
    assert_eq!(status, StatusCode::CREATED, "{image}");
    assert_eq!((image["content_type"].as_str(), image["width"].as_i64()), (Some("image/png"), Some(8)));
    let (status, page) =
        ann.upload(&server, "../../evil \"page\".png", b"<html><script>alert(1)</script>".to_vec()).await;
    assert_eq!(status, StatusCode::CREATED, "{page}");
    assert_eq!(page["name"], "evil \"page\".png");
    assert_eq!(page["content_type"], "text/plain");

    let ids = [image["id"].as_i64().unwrap(), page["id"].as_i64().unwrap()];
    let (status, sent) = ann.send_files(&server, ben.id, "", "files-1", &ids).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let names: Vec<&str> =
        sent["attachments"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["red.png", "evil \"page\".png"]);

    // Ben sees the image inline, and the page as a download that cannot run.
    let response = ben.client.get(server.url(&format!("/files/{}", ids[0]))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers[CONTENT_TYPE], "image/png");
    assert!(headers[CONTENT_DISPOSITION].to_str().unwrap().starts_with("inline; filename=\"red.png\""));
    assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(headers[CONTENT_SECURITY_POLICY].to_str().unwrap().contains("sandbox"));
    assert_eq!(response.bytes().await.unwrap().to_vec(), png());

    let response = ben.client.get(server.url(&format!("/files/{}", ids[1]))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers[CONTENT_TYPE], "application/octet-stream");
    assert_eq!(
        headers[CONTENT_DISPOSITION],
        "attachment; filename=\"evil _page_.png\"; filename*=UTF-8''evil%20%22page%22.png"
    );
    assert!(headers[CONTENT_SECURITY_POLICY].to_str().unwrap().starts_with("default-src 'none'"));
    let preview = ben.client.get(server.url(&format!("/files/{}/preview", ids[0]))).send().await.unwrap();
    assert_eq!(preview.status(), StatusCode::OK);

    // Eve, a signed-out visitor, and a file that does not exist: the same 404.
    for url in [format!("/files/{}", ids[0]), format!("/files/{}/preview", ids[0]), format!("/files/{}", ids[1] + 100)]
    {
        assert_eq!(eve.client.get(server.url(&url)).send().await.unwrap().status(), StatusCode::NOT_FOUND, "{url}");
        assert_eq!(reqwest::get(server.url(&url)).await.unwrap().status(), StatusCode::NOT_FOUND, "{url}");
    }
    // Nobody else may send Ann's upload, even knowing its id.
    let (status, json) = eve.send_files(&server, ben.id, "mine now", "files-2", &ids[..1]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");

    // Deleting the message takes its files: Ben's links answer 404 from then on.
    let (status, json, _) =
        post(&ann.client, server.url("/api/messages/delete"), &[("message_id", &sent["id"].to_string())]).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(json["attachments"].as_array().is_none_or(Vec::is_empty), "{json}");
    for id in ids {
        let gone = ben.client.get(server.url(&format!("/files/{id}"))).send().await.unwrap();
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_group_file_is_for_its_members_and_not_after_removal() {
    for storage in storages() {
        group_files(server_on(storage).await).await;
    }
}

async fn group_files(server: TestServer) {
    let (ann, ben, eve) = (sign_up(&server, "Ann").await, sign_up(&server, "Ben").await, sign_up(&server, "Eve").await);
    let (ben_id, eve_id) = (ben.id.to_string(), eve.id.to_string());
    let form = [("name", "Trip"), ("member_ids[0]", ben_id.as_str()), ("member_ids[1]", eve_id.as_str())];
    let (status, group, _) = post(&ann.client, server.url("/api/groups/create"), &form).await;
    assert_eq!(status, StatusCode::OK, "{group}");
    let room = group["id"].to_string();

    let (status, image) = ann.upload(&server, "map.png", png()).await;
    assert_eq!(status, StatusCode::CREATED, "{image}");
    let file = image["id"].as_i64().unwrap();
    let form = [
        ("room_id", room.as_str()),
        ("body", "the route"),
        ("client_id", "g-1"),
        ("attachments[0]", &file.to_string()),
    ];
    let (status, sent, _) = post(&ann.client, server.url("/api/groups/send"), &form).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!(sent["attachments"][0]["width"], 8);

    let url = server.url(&format!("/files/{file}"));
    for member in [&ben, &eve] {
        let response = member.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.bytes().await.unwrap().to_vec(), png());
    }
    let (status, json, _) =
        post(&ann.client, server.url("/api/groups/remove"), &[("room_id", room.as_str()), ("user_id", &eve_id)]).await;
    assert_eq!(status, StatusCode::OK, "{json}");

    // What Eve could read while a member stays as readable as its message; what comes after is not hers.
    let (status, later) = ann.upload(&server, "after.png", png()).await;
    assert_eq!(status, StatusCode::CREATED, "{later}");
    let later = later["id"].as_i64().unwrap();
    let form = [("room_id", room.as_str()), ("body", ""), ("client_id", "g-2"), ("attachments[0]", &later.to_string())];
    let (status, sent, _) = post(&ann.client, server.url("/api/groups/send"), &form).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let later_url = server.url(&format!("/files/{later}"));
    assert_eq!(eve.client.get(&later_url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(eve.client.get(format!("{later_url}/preview")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(eve.client.get(&url).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(ben.client.get(&later_url).send().await.unwrap().status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_upload_is_413_before_it_is_stored_and_signed_out_is_401() {
    for storage in storages() {
        refusals(server_on(storage).await).await;
    }
}

async fn refusals(server: TestServer) {
    let ann = sign_up(&server, "Ann").await;
    let too_big = vec![0u8; app::model::ATTACHMENT_MAX_BYTES as usize + 1];
    let response = ann.client.post(server.url("/api/uploads?name=big.bin")).body(too_big).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let response = reqwest::Client::new().post(server.url("/api/uploads?name=a.txt")).body("hi").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (status, empty) = ann.upload(&server, "empty.txt", Vec::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{empty}");
    assert!(empty["message"].as_str().unwrap().contains("empty"));

    // A file that made it up can be taken back while unsent; then it is gone.
    let (status, file) = ann.upload(&server, "draft.txt", b"maybe".to_vec()).await;
    assert_eq!(status, StatusCode::CREATED);
    let url = server.url(&format!("/api/uploads/{}", file["id"]));
    assert_eq!(ann.client.delete(&url).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(ann.client.delete(&url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let gone = ann.client.get(server.url(&format!("/files/{}", file["id"]))).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert!(gone.headers().get(CONTENT_LENGTH).is_some());
    server.stop().await;
}
