def test_version_answers_with_a_valid_key(datazen):
    # when
    response = datazen.get("/version")
    # then
    assert response.status_code == 200
    body = response.json()["Version"]
    assert body["Running"] is True
    assert set(body) == {"URL", "Running", "Major", "Minor", "Revision", "Build", "JobsRunning"}
