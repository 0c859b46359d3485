"""The cluster file: what it may say, TLS paths next to it, and every problem as ``file:line: field: message``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lab.cluster.model import Cluster, load_cluster
from lab.errors import TopologyError

ENGINE_HELP = ("expected an engine endpoint: unix:///var/run/docker.sock, ssh://user@host "
               "or tcp://host:2376")
NAME_HELP = "not a valid name (allowed: lower-case letters, digits and '-', starting with a letter, at most 31)"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(TopologyError) as info:
        load_cluster(path)
    return info.value.problems


@pytest.fixture
def good(tmp_path: Path) -> Path:
    """A cluster file in a directory of its own, with the three PEM files next to it."""
    conf = tmp_path / "conf"
    conf.mkdir()
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (conf / name).write_text("-----BEGIN CERTIFICATE-----\n")
    return write(conf / "cluster.yaml", """\
        # three machines, one of each kind of engine
        machines:
          m1: {engine: unix:///var/run/docker.sock}
          m2:
            engine: ssh://root@10.0.0.2
          m-3:
            engine: tcp://10.0.0.3:2376
            tls: {ca: ca.pem, cert: cert.pem, key: key.pem}
        """)


def test_a_valid_file_loads_every_machine(good: Path) -> None:
    cluster = load_cluster(good)
    assert isinstance(cluster, Cluster)
    assert list(cluster.machines) == ["m1", "m2", "m-3"]
    assert cluster.machines["m1"].engine == "unix:///var/run/docker.sock"
    assert cluster.machines["m2"].engine == "ssh://root@10.0.0.2"
    assert cluster.machines["m-3"].engine == "tcp://10.0.0.3:2376"
    assert [m.scheme for m in cluster.machines.values()] == ["unix", "ssh", "tcp"]
    assert cluster.machines["m1"].tls is None
    assert cluster.path == good


def test_tls_paths_resolve_next_to_the_cluster_file(good: Path) -> None:
    cluster = load_cluster(good)
    conf = good.parent
    assert cluster.tls_paths("m-3") == (str(conf / "ca.pem"), str(conf / "cert.pem"), str(conf / "key.pem"))
    assert cluster.tls_paths("m1") is None
    assert cluster.tls_paths("m2") is None
    assert cluster.tls == {"m-3": (str(conf / "ca.pem"), str(conf / "cert.pem"), str(conf / "key.pem"))}


def test_absolute_tls_paths_are_kept(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (certs / name).write_text("x\n")
    path = write(tmp_path / "elsewhere" / "cluster.yaml", f"""\
        machines:
          m1:
            engine: tcp://10.0.0.3:2376
            tls: {{ca: {certs / 'ca.pem'}, cert: {certs / 'cert.pem'}, key: {certs / 'key.pem'}}}
        """)
    assert load_cluster(path).tls_paths("m1") == (str(certs / "ca.pem"), str(certs / "cert.pem"),
                                                  str(certs / "key.pem"))


def test_where_names_the_line_of_each_machine(good: Path) -> None:
    cluster = load_cluster(good)
    assert cluster.where("m1") == f"{good}:3"
    assert cluster.where("m2") == f"{good}:4"
    assert cluster.where("m-3") == f"{good}:6"
    assert cluster.lines == {"m1": 3, "m2": 4, "m-3": 6}


def test_where_of_an_unknown_machine_is_the_first_line(good: Path) -> None:
    assert load_cluster(good).where("nowhere") == f"{good}:1"


def test_an_unknown_key_is_named_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", """\
        machines:
          m1:
            engine: unix:///var/run/docker.sock
            colour: red
        """)
    problems = problems_of(path)
    assert problems == [f"{path}:4: machines.m1.colour: unknown key 'colour'; expected one of: engine, tls"]
    assert problems[0].split(": ", 2)[2].startswith("unknown key")


def test_an_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", """\
        machines:
          m1: {engine: unix:///var/run/docker.sock}
        swarm: yes-please
        """)
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:3: swarm: unknown key 'swarm'")


def test_an_engine_with_another_scheme_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", """\
        machines:
          m1: {engine: unix:///var/run/docker.sock}
          m2:
            engine: http://x
        """)
    assert problems_of(path) == [f"{path}:4: machines.m2.engine: {ENGINE_HELP} (got 'http://x')"]


@pytest.mark.parametrize("engine", ["10.0.0.2", "ssh://", "tcp://host :2376", "docker://x"])
def test_other_malformed_engines_are_refused(tmp_path: Path, engine: str) -> None:
    path = write(tmp_path / "c.yaml", f"""\
        machines:
          m1:
            engine: "{engine}"
        """)
    assert problems_of(path) == [f"{path}:3: machines.m1.engine: {ENGINE_HELP} (got {engine!r})"]


def test_a_relative_unix_socket_path_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", """\
        machines:
          m1:
            engine: unix://var/run/docker.sock
        """)
    assert problems_of(path) == [
        f"{path}:3: machines.m1.engine: a unix endpoint names an absolute socket path: "
        "unix:///var/run/docker.sock (got 'unix://var/run/docker.sock')"]


def test_tls_on_a_unix_engine_is_refused(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x\n")
    path = write(tmp_path / "c.yaml", """\
        machines:
          m1:
            engine: unix:///var/run/docker.sock
            tls: {ca: ca.pem, cert: cert.pem, key: key.pem}
        """)
    assert problems_of(path) == [f"{path}:4: machines.m1.tls: TLS is for tcp:// engines (this one is unix://)"]


def test_tls_on_an_ssh_engine_is_refused(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x\n")
    path = write(tmp_path / "c.yaml", """\
        machines:
          m1: {engine: unix:///var/run/docker.sock}
          m2:
            engine: ssh://root@10.0.0.2
            tls:
              ca: ca.pem
              cert: cert.pem
              key: key.pem
        """)
    assert problems_of(path) == [f"{path}:5: machines.m2.tls: TLS is for tcp:// engines (this one is ssh://)"]


def test_a_missing_tls_file_is_named_with_its_full_path(tmp_path: Path) -> None:
    for name in ("ca.pem", "key.pem"):
        (tmp_path / name).write_text("x\n")
    path = write(tmp_path / "c.yaml", """\
        machines:
          m1:
            engine: tcp://10.0.0.3:2376
            tls:
              ca: ca.pem
              cert: nothere.pem
              key: key.pem
        """)
    assert problems_of(path) == [
        f"{path}:6: machines.m1.tls.cert: no such file {str(tmp_path / 'nothere.pem')!r}"]


def test_every_missing_tls_file_is_one_problem(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", """\
        machines:
          m1:
            engine: tcp://10.0.0.3:2376
            tls:
              ca: ca.pem
              cert: cert.pem
              key: key.pem
        """)
    error = pytest.raises(TopologyError, load_cluster, path).value
    assert error.problems == [
        f"{path}:5: machines.m1.tls.ca: no such file {str(tmp_path / 'ca.pem')!r}",
        f"{path}:6: machines.m1.tls.cert: no such file {str(tmp_path / 'cert.pem')!r}",
        f"{path}:7: machines.m1.tls.key: no such file {str(tmp_path / 'key.pem')!r}",
    ]
    assert str(error).startswith("3 problems:\n")


def test_a_tls_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").mkdir()
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("x\n")
    path = write(tmp_path / "c.yaml", """\
        machines:
          m1:
            engine: tcp://10.0.0.3:2376
            tls: {ca: ca.pem, cert: cert.pem, key: key.pem}
        """)
    assert problems_of(path) == [f"{path}:4: machines.m1.tls.ca: no such file {str(tmp_path / 'ca.pem')!r}"]


def test_an_invalid_machine_name_is_refused_on_its_own_line(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", """\
        # the second machine's name has upper case and an underscore
        machines:
          m1: {engine: unix:///var/run/docker.sock}
          M_1: {engine: unix:///var/run/docker.sock}
        """)
    assert problems_of(path) == [f"{path}:4: machines.M_1: {NAME_HELP} (got 'M_1')"]


@pytest.mark.parametrize("name", ["1m", "-m", "m" * 32, "m.1", "Machine"])
def test_other_invalid_machine_names(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / "c.yaml", f"""\
        machines:
          "{name}": {{engine: unix:///var/run/docker.sock}}
        """)
    assert problems_of(path) == [f"{path}:2: machines.{name}: {NAME_HELP} (got {name!r})"]


def test_the_longest_machine_name_is_accepted(tmp_path: Path) -> None:
    name = "m" + "-" * 29 + "9"
    path = write(tmp_path / "c.yaml", f"""\
        machines:
          {name}: {{engine: unix:///var/run/docker.sock}}
        """)
    assert list(load_cluster(path).machines) == [name]


def test_an_empty_machines_mapping_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", """\
        # nothing to run on
        machines: {}
        """)
    assert problems_of(path) == [
        f"{path}:2: machines: dictionary should have at least 1 item after validation, not 0"]


def test_a_misspelt_required_key_is_one_problem(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", """\
        machines:
          m1: {engin: unix:///var/run/docker.sock}
        """)
    assert problems_of(path) == [f"{path}:2: machines.m1.engin: unknown key 'engin'; did you mean 'engine'?"]


def test_a_missing_machines_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", """\
        # no machines here
        engines: {}
        """)
    assert problems_of(path) == [f"{path}:2: machines: required key is missing",
                                 f"{path}:2: engines: unknown key 'engines'; expected one of: machines, registry"]


def test_a_file_that_is_a_list_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", """\
        - m1
        - m2
        """)
    assert problems_of(path) == [f"{path}:1: a cluster file is a mapping (this file holds a list)"]


def test_machines_that_is_a_list_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", """\
        # machines as a list, not a mapping

        machines: [m1, m2]
        """)
    assert problems_of(path) == [f"{path}:3: machines: input should be a valid dictionary"]


def test_a_registry_names_the_references_the_machines_pull(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", """\
        machines:
          m1: {engine: unix:///var/run/docker.sock}
          m2: {engine: ssh://root@10.0.0.2}
        registry: {address: "registry.example:5000", push_from: m2}
        """)
    registry = load_cluster(path).registry
    assert registry is not None and registry.push_from == "m2"
    assert registry.reference("lab-host:0123abcd") == "registry.example:5000/lab-host:0123abcd"


def test_no_registry_is_none(good: Path) -> None:
    assert load_cluster(good).registry is None


def test_a_registry_pushing_from_an_unnamed_machine_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", """\
        machines:
          m1: {engine: unix:///var/run/docker.sock}
        registry:
          address: registry.example
          push_from: m9
        """)
    assert problems_of(path) == [f"{path}:5: registry.push_from: 'm9' is not a machine of this file (machines: m1)"]


@pytest.mark.parametrize("address", ["http://registry.example:5000", "registry.example:5000/lab", "-bad", "a b"])
def test_a_registry_address_is_host_and_port_only(tmp_path: Path, address: str) -> None:
    path = write(tmp_path / "c.yaml", f"""\
        machines:
          m1: {{engine: unix:///var/run/docker.sock}}
        registry: {{address: "{address}"}}
        """)
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:3: registry.address: "), problem


def test_an_unknown_registry_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", """\
        machines:
          m1: {engine: unix:///var/run/docker.sock}
        registry: {address: r.example, user: me}
        """)
    [problem] = problems_of(path)
    assert problem == f"{path}:3: registry.user: unknown key 'user'; expected one of: address, push_from"


def test_an_engine_that_does_not_answer_is_told_what_to_check(good: Path) -> None:
    from lab.cluster.engines import unreachable_fix

    cluster = load_cluster(good)
    assert unreachable_fix(cluster, "m2").startswith("check that ssh -o BatchMode=yes root@10.0.0.2 docker version "
                                                     "works from here")
    assert unreachable_fix(cluster, "m2").endswith(f"or fix the endpoint in {good}:4")
    assert unreachable_fix(cluster, "m-3") == (f"start the engine at tcp://10.0.0.3:2376, "
                                               f"or fix the endpoint in {good}:6")
    assert unreachable_fix(cluster, "m2", place_named=True).endswith("or fix that endpoint")


def test_lab_runs_ssh_without_a_prompt_and_with_the_endpoints_user_and_port() -> None:
    from lab.cluster.sshsocket import check_command, ssh_argv

    assert check_command("ssh://admin@m2.example:2222") == ("ssh -o BatchMode=yes -p 2222 admin@m2.example "
                                                            "docker version")
    assert check_command("ssh://10.0.0.2") == "ssh -o BatchMode=yes 10.0.0.2 docker version"

    assert ssh_argv("root", "10.0.0.2", "2222", "docker system dial-stdio") == [
        "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-l", "root", "-p", "2222",
        "--", "10.0.0.2", "docker system dial-stdio"]
    assert ssh_argv(None, "m2", None, "true") == ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                                                  "--", "m2", "true"]


def test_an_engine_that_does_not_answer_is_told_by_the_reason_at_the_bottom() -> None:
    """docker-py wraps requests, which wraps urllib3, which wraps the OSError: the line gives the OSError's words."""
    from lab.cluster.engines import why

    def wrapped(bottom: OSError) -> BaseException:
        middle = ConnectionError(("Connection aborted.", bottom))
        middle.__context__ = bottom
        outer = RuntimeError(f"Error while fetching server API version: {middle}")
        outer.__cause__ = middle
        return outer

    assert why(wrapped(FileNotFoundError(2, "No such file or directory"))) == "no such file or directory"
    assert why(wrapped(ConnectionRefusedError(111, "Connection refused"))) == "connection refused"
    assert why(RuntimeError("first line\nsecond")) == "first line"
