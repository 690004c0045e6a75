"""Bulk add (issue 18 item 3): a list of machines, as addresses or CSV rows, added all or none,
every mistake reported with its line; the list is bounded like every other parser of user input."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from nodes import machine_list
from nodes.machine_list import MachineListError, parse
from nodes.models import Node
from tests.conftest import team_of
from tests.factories import make_cluster

pytestmark = pytest.mark.django_db


def _problems(text: str) -> list[tuple[int, str]]:
    with pytest.raises(MachineListError) as info:
        parse(text)
    return info.value.problems


def test_an_address_list_and_csv_rows_with_defaults_left_open():
    rows = parse("# rack 1\n10.0.0.11\n\nweb-2,10.0.0.12,admin,2222,control-plane\nweb-3, 10.0.0.13 ,,,\n")
    assert rows[2].text == "web-3, 10.0.0.13 ,,,"
    assert [(r.line, r.name, r.address, r.user, r.port, r.role) for r in rows] == [
        (2, None, "10.0.0.11", None, None, None),
        (4, "web-2", "10.0.0.12", "admin", 2222, "control-plane"),
        (5, "web-3", "10.0.0.13", None, None, None),
    ]


def test_a_header_row_puts_the_columns_in_any_order():
    rows = parse("Address,Role,Name\n10.0.0.11,worker,a\n10.0.0.12,Control Plane,b\n")
    assert [(r.name, r.address, r.role) for r in rows] == [
        ("a", "10.0.0.11", "worker"),
        ("b", "10.0.0.12", "control-plane"),
    ]
    assert _problems("address,password\n10.0.0.1,x\n") == [
        (1, "unknown column 'password' in the header; the columns are name, address, user, port, role.")
    ]


def test_every_bad_line_is_named_at_once():
    problems = _problems(
        'a,10.0.0.1,root,22000000\nb,10.0.0.2,root,22,boss\nc,10.0.0.3,root,22,worker,secret\n"d,10.0.0.4\nok.example\n'
    )
    assert [line for line, _ in problems] == [1, 2, 3, 4]
    assert "port '22000000' is not a number from 1 to 65535" in problems[0][1]
    assert "role 'boss' is neither control-plane nor worker" in problems[1][1]
    assert "6 columns, at most 5" in problems[2][1] and "password or private key is never part" in problems[2][1]
    assert "not a CSV row" in problems[3][1]
    assert "Line 2: role 'boss'" in str(MachineListError(problems))


def test_the_list_is_bounded_before_it_is_split():
    assert "larger than 64 KiB" in _problems("10.0.0.1\n" * 8000)[0][1]
    assert "at most 200 at once" in _problems("\n" * 300)[0][1]
    assert "longer than 512 characters" in _problems("a" * 600)[0][1]
    assert "names no machine" in _problems("# nothing\n\n")[0][1]
    # A digit that is not ASCII is not a port (int() would take some and refuse others).
    assert "is not a number" in _problems("a,10.0.0.1,root,²²")[0][1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from([",", '"', "\n", "\r", " ", "#", "\t", "\x00", "a", "1", ".", "-", ":", "é", "²", "\u2028"])
        | st.sampled_from(["name", "address", "port", "role", "worker", "10.0.0.1", "65536"]),
        max_size=80,
    ).map("".join)
)
def test_the_parser_raises_only_its_own_error(text):
    try:
        rows = parse(text)
    except MachineListError as exc:
        assert exc.problems and all(isinstance(line, int) for line, _ in exc.problems)
    else:
        assert rows and all(row.address for row in rows)


@pytest.fixture
def operator_client(operator):
    client = Client()
    client.force_login(operator)
    return client


def _post(client, cluster, text: str, **defaults):
    data = {"bulk-machines": text, "bulk-ssh_user": "root", "bulk-ssh_port": 22, "bulk-role": "worker"}
    data.update({f"bulk-{key}": value for key, value in defaults.items()})
    return client.post(reverse("nodes:bulk-add", args=[cluster.name]), data)


def test_bulk_add_saves_every_machine_with_its_own_record(operator, operator_client):
    cluster = make_cluster("c1", team=team_of(operator))
    response = _post(
        operator_client, cluster, "10.0.0.11\nWeb.Example.\nw3,10.0.0.13,admin,2222,control-plane\n", role="worker"
    )
    assert response.status_code == 302 and response["Location"] == reverse("nodes:host-keys", args=["c1"])
    nodes = {n.name: n for n in Node.objects.filter(cluster=cluster)}
    assert sorted(nodes) == ["10.0.0.11", "w3", "web.example"]
    assert (nodes["w3"].ssh_user, nodes["w3"].ssh_port, nodes["w3"].role) == ("admin", 2222, "control-plane")
    assert (nodes["10.0.0.11"].ssh_user, nodes["10.0.0.11"].ssh_port, nodes["10.0.0.11"].role) == ("root", 22, "worker")
    assert all(n.credential == Node.Credential.CLUSTER_KEY for n in nodes.values())
    added = AuditEvent.objects.filter(action="node.added").values_list("object_repr", flat=True)
    assert len(added) == 3 and AuditEvent.objects.filter(action="cluster.ssh_key_generated").count() == 1
    page = operator_client.get(response["Location"]).content.decode()
    assert "Added 10.0.0.11, web.example, w3." in page


def test_one_bad_line_adds_nothing_and_names_each_line(operator, operator_client, make_user):
    mine = make_cluster("c1", team=team_of(operator))
    secret_team = make_cluster("secret-c9", team=team_of(make_user("bob", team="secret")))
    Node.objects.create(cluster=mine, name="old", address="10.0.0.5")
    Node.objects.create(cluster=secret_team, name="theirs", address="10.0.0.6")
    text = "a,10.0.0.1\nold,10.0.0.2\nb,10.0.0.5\nc,10.0.0.6\nBad_Name,10.0.0.7\nd,10.0.0.1\n::1\nu,10.0.0.8,Root!\n"
    response = _post(operator_client, mine, text)
    assert response.status_code == 400
    assert (
        Node.objects.filter(cluster=mine).count() == 1 and not AuditEvent.objects.filter(action="node.added").exists()
    )
    errors = response.context["form"].errors["machines"]
    assert errors[0].startswith("Line 2: old,10.0.0.2: Name: Cluster c1 already has a node named old.")
    assert any(
        e.startswith("Line 3: b,10.0.0.5: Address: This machine (10.0.0.5:22) is already node old") for e in errors
    )
    # Another team's machine is refused without naming what the person may not see.
    assert any(e.startswith("Line 4:") and "already registered in another cluster" in e for e in errors)
    assert "secret-c9" not in response.content.decode() and "theirs" not in response.content.decode()
    assert any(e.startswith("Line 5: Bad_Name,10.0.0.7: Name:") for e in errors)
    assert "Line 6: the name d" not in " ".join(errors)
    assert any(e.startswith("Line 6: the machine 10.0.0.1:22 is already on line 1") for e in errors)
    assert any(
        e.startswith("Line 7: ::1: Name: ::1 cannot be a node name; give the row a name column") for e in errors
    ), errors
    assert any(e.startswith("Line 8: u,10.0.0.8,Root!: SSH user:") for e in errors)
    assert response.content.decode().count('class="error"') == len(errors)


def test_paste_or_upload_not_both_and_the_upload_is_bounded(operator, operator_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    cluster = make_cluster("c1", team=team_of(operator))
    url = reverse("nodes:bulk-add", args=["c1"])
    base = {"bulk-ssh_user": "root", "bulk-ssh_port": 22, "bulk-role": "worker"}
    upload = SimpleUploadedFile("m.csv", "\ufeffname,address\nm1,10.0.0.1\n".encode(), "text/csv")
    assert operator_client.post(url, base | {"bulk-machines_file": upload}).status_code == 302
    assert list(Node.objects.filter(cluster=cluster).values_list("name", flat=True)) == ["m1"]
    both = SimpleUploadedFile("m.csv", b"10.0.0.2\n", "text/csv")
    response = operator_client.post(url, base | {"bulk-machines": "10.0.0.3", "bulk-machines_file": both})
    assert "paste the list or upload its file, not both" in response.context["form"].errors["machines"][0]
    big = SimpleUploadedFile("m.csv", b"10.0.0.2\n" * 9000, "text/csv")
    response = operator_client.post(url, base | {"bulk-machines_file": big})
    assert "larger than 64 KiB" in response.context["form"].errors["machines"][0]


def test_a_viewer_cannot_bulk_add_and_the_cluster_page_offers_it_to_operators(make_user, operator, operator_client):
    cluster = make_cluster("c1", team=team_of(operator))
    viewer = make_user("vic", role="viewer")
    client = Client()
    client.force_login(viewer)
    assert _post(client, cluster, "10.0.0.1").status_code == 403
    assert 'id="bulk-add-form"' not in client.get(cluster.get_absolute_url()).content.decode()
    page = operator_client.get(cluster.get_absolute_url()).content.decode()
    assert 'id="bulk-add-form"' in page and 'name="bulk-machines"' in page
    assert machine_list.MAX_LINES == 200
