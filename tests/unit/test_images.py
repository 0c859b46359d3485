"""Image recipes and their content-hash tags, without Docker: what changes a tag, and what does not."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from lab import dockerbuild, images, rootimage
from lab.errors import EnvironmentProblem

ROOT = Path(__file__).resolve().parents[2]


def make_project(tmp_path: Path) -> Path:
    """A small project: images/{base,router,host} and a lab/servers package the host image copies."""
    project = tmp_path / "project"
    (project / "images" / "base").mkdir(parents=True)
    (project / "images" / "base" / "Dockerfile").write_text("ARG ROOT=debian:bookworm-slim\nFROM ${ROOT}\n")
    (project / "images" / "base" / "hello.sh").write_text("#!/bin/sh\necho hi\n")
    (project / "images" / "base" / "hello.sh").chmod(0o755)
    (project / "images" / "router").mkdir()
    (project / "images" / "router" / "Dockerfile").write_text("ARG BASE=lab-base\nFROM ${BASE}\nRUN true\n")
    (project / "images" / "host").mkdir()
    (project / "images" / "host" / "Dockerfile").write_text(
        "# lab: context lab/__init__.py lab/servers\nARG BASE=lab-base\nFROM ${BASE}\nCOPY lab /opt/lab\n")
    (project / "lab" / "servers" / "__pycache__").mkdir(parents=True)
    (project / "lab" / "__init__.py").write_text("")
    (project / "lab" / "servers" / "echo.py").write_text("print('echo')\n")
    (project / "lab" / "servers" / "__pycache__" / "echo.cpython-311.pyc").write_bytes(b"\0junk")
    return project


def tag(project: Path, name: str, parent: str = "sha256:root") -> str:
    recipe = images.recipes(project / "images")[name]
    return images.tag_for(recipe, images.context_members(recipe, project), parent)


def test_recipes_know_their_parent_and_extra_context(tmp_path):
    project = make_project(tmp_path)
    found = images.recipes(project / "images")
    assert set(found) == {"base", "router", "host"}
    assert found["base"].parent is None
    assert found["router"].parent == "base"
    assert found["host"].sources == ("lab/__init__.py", "lab/servers")
    assert found["router"].repository == "lab-router"


def test_the_project_images_form_one_tree_on_base():
    found = images.recipes(ROOT / "lab" / "recipes")
    assert {"base", "host", "router", "dns", "proxy", "web"} <= set(found)
    assert found["base"].parent is None
    for name in ("host", "router", "dns", "proxy", "web"):
        assert found[name].parent == "base", name
    members = {m.path for m in images.context_members(found["host"], ROOT)}
    assert "Dockerfile" in members and "lab/__init__.py" in members
    assert any(p.startswith("lab/servers/") and p.endswith(".py") for p in members)
    assert not any(p.endswith(".pyc") or "__pycache__" in p for p in members)


def test_the_tag_is_stable_and_names_the_repository(tmp_path):
    project = make_project(tmp_path)
    first = tag(project, "router")
    assert first == tag(project, "router")
    repo, _, digest = first.partition(":")
    assert repo == "lab-router" and len(digest) == dockerbuild.TAG_LENGTH and int(digest, 16) >= 0


def test_a_changed_dockerfile_changes_only_its_own_tag(tmp_path):
    project = make_project(tmp_path)
    router, host = tag(project, "router"), tag(project, "host")
    (project / "images" / "router" / "Dockerfile").write_text("ARG BASE=lab-base\nFROM ${BASE}\nRUN false\n")
    assert tag(project, "router") != router
    assert tag(project, "host") == host


def test_a_new_file_beside_the_dockerfile_changes_the_tag(tmp_path):
    project = make_project(tmp_path)
    before = tag(project, "router")
    (project / "images" / "router" / "rules.v4").write_text("*filter\nCOMMIT\n")
    assert tag(project, "router") != before


def test_a_changed_server_source_rebuilds_the_host_image_only(tmp_path):
    project = make_project(tmp_path)
    host, router = tag(project, "host"), tag(project, "router")
    (project / "lab" / "servers" / "echo.py").write_text("print('echo 2')\n")
    assert tag(project, "host") != host
    assert tag(project, "router") == router


def test_bytecode_caches_do_not_change_the_tag(tmp_path):
    project = make_project(tmp_path)
    before = tag(project, "host")
    (project / "lab" / "servers" / "__pycache__" / "other.cpython-311.pyc").write_bytes(b"\1\2")
    assert tag(project, "host") == before


def test_a_new_parent_changes_the_tag(tmp_path):
    project = make_project(tmp_path)
    assert tag(project, "router", "lab-base:aaaa") != tag(project, "router", "lab-base:bbbb")


def test_only_the_executable_bit_of_a_mode_counts(tmp_path):
    project = make_project(tmp_path)
    script = project / "images" / "base" / "hello.sh"
    before = tag(project, "base")
    script.chmod(0o775)  # a different umask: still executable
    assert tag(project, "base") == before
    script.chmod(0o644)
    assert tag(project, "base") != before


def test_the_context_tar_is_deterministic_and_holds_the_members(tmp_path):
    project = make_project(tmp_path)
    recipe = images.recipes(project / "images")["host"]
    members = images.context_members(recipe, project)
    a, b = images.context_tar(members).getvalue(), images.context_tar(members).getvalue()
    assert a == b
    with tarfile.open(fileobj=images.context_tar(members)) as tar:
        names = tar.getnames()
        assert names == sorted(names)
        assert set(names) == {"Dockerfile", "lab/__init__.py", "lab/servers/echo.py"}
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())


def test_build_order_puts_parents_first(tmp_path):
    found = images.recipes(make_project(tmp_path) / "images")
    assert images.build_order(found, ["host"]) == [["base"], ["host"]]
    assert images.build_order(found, ["router", "host"]) == [["base"], ["host", "router"]]
    assert images.build_order(found, ["base"]) == [["base"]]


def test_a_dockerfile_without_a_known_parent_is_refused(tmp_path):
    project = make_project(tmp_path)
    (project / "images" / "odd").mkdir()
    (project / "images" / "odd" / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(EnvironmentProblem, match="ARG BASE=lab-<image>"):
        images.recipes(project / "images")
    (project / "images" / "odd" / "Dockerfile").write_text("ARG BASE=lab-missing\nFROM ${BASE}\n")
    with pytest.raises(EnvironmentProblem, match="lab-missing"):
        images.recipes(project / "images")


def test_a_context_path_outside_the_project_is_refused(tmp_path):
    project = make_project(tmp_path)
    (project / "images" / "host" / "Dockerfile").write_text("# lab: context ../../etc\nARG BASE=lab-base\n")
    recipe = images.recipes(project / "images")["host"]
    with pytest.raises(EnvironmentProblem, match="not a path inside"):
        images.context_members(recipe, project)


def test_debian_sources_read_both_apt_formats(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_DEBIAN_MIRROR", raising=False)
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n"
        "deb-src http://mirror.example/debian bookworm main\n")
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\nTypes: deb\nURIs: http://other.example/x\nSuites: trixie\nComponents: main\n")
    assert rootimage.debian_sources("bookworm", apt) == [
        ("http://mirror.example/debian", "bookworm"),
        ("http://security.example/debian-security", "bookworm-security"),
    ]


def test_debian_sources_fall_back_to_deb_debian_org(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_DEBIAN_MIRROR", raising=False)
    assert rootimage.debian_sources("bookworm", tmp_path) == [("http://deb.debian.org/debian", "bookworm")]
    monkeypatch.setenv("LAB_DEBIAN_MIRROR", "http://local/debian")
    assert rootimage.debian_sources("bookworm", tmp_path) == [("http://local/debian", "bookworm")]


def test_the_rootfs_tag_follows_its_recipe():
    recipe = {"version": "1", "suite": "bookworm", "variant": "minbase", "mirror": "http://a/debian",
              "sources": ["deb http://a/debian bookworm main"], "no_valid_until": False}
    first = rootimage.rootfs_tag(recipe)
    assert first.startswith("lab-rootfs:") and first == rootimage.rootfs_tag(dict(recipe))
    assert rootimage.rootfs_tag({**recipe, "mirror": "http://b/debian"}) != first


def test_images_dir_can_be_overridden(tmp_path, monkeypatch):
    project = make_project(tmp_path)
    shutil.rmtree(project / "images" / "host")
    monkeypatch.setenv("LAB_IMAGES_DIR", str(project / "images"))
    assert images.images_dir() == project / "images"
    assert set(images.recipes()) == {"base", "router"}
