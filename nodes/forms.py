from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from clusters.validators import validate_ignore_preflight_errors
from core.form_fields import BoundedModelMultipleChoiceField
from core.permissions import VIEW, can
from core.secret_forms import SecretFieldsMixin, WriteOnlyTextarea
from kubeadm.preflight import parse_check_list
from nodes import machine_list
from nodes.models import Node
from nodes.validators import normalize_address
from remote import keys


class NodeForm(SecretFieldsMixin, forms.ModelForm):
    """Add or edit a machine. Secrets are write-only: never shown back (not even after a mistake),
    blank on edit keeps them."""

    secret_fields = ("private_key", "private_key_file", "passphrase", "password")

    private_key = forms.CharField(
        label="Private key",
        required=False,
        strip=False,
        widget=WriteOnlyTextarea(attrs={"rows": 6, "autocomplete": "off", "spellcheck": "false"}),
        help_text="Paste the whole private key file (such as ~/.ssh/id_ed25519, not the .pub), or upload it below. "
        "Stored encrypted and never shown again.",
    )
    private_key_file = forms.FileField(label="…or upload the private key file", required=False)
    passphrase = forms.CharField(
        label="Key passphrase",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Only if the private key is encrypted.",
    )
    password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again.",
    )
    ignore_preflight_errors = forms.CharField(
        label="Ignore preflight errors",
        required=False,
        help_text="kubeadm check names separated by commas, e.g. NumCPU, Mem (kubeadm --ignore-preflight-errors).",
    )

    class Meta:
        model = Node
        fields = ["name", "address", "ssh_port", "ssh_user", "role", "credential"]
        widgets = {"credential": forms.RadioSelect}
        help_texts = {
            "name": "The Kubernetes node name: lower-case letters, digits, '-' and '.'.",
            "address": "IP address or DNS host name Kubeboard connects to over SSH.",
            "ssh_user": "root, or a user with passwordless sudo.",
        }

    def __init__(self, *args, cluster, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cluster = cluster
        self.user = user
        self.instance.cluster = cluster
        self.editing = self.instance.pk is not None
        if self.editing:
            self.initial["ignore_preflight_errors"] = ", ".join(self.instance.ignore_preflight_errors or [])
            stored = {
                Node.Credential.PRIVATE_KEY: "A private key is stored; leave empty to keep it.",
                Node.Credential.PASSWORD: "A password is stored; leave empty to keep it.",
            }.get(self.instance.credential)
            if stored:
                field = "private_key" if self.instance.credential == Node.Credential.PRIVATE_KEY else "password"
                self.fields[field].help_text = stored

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        others = Node.objects.filter(cluster=self.cluster, name=name).exclude(pk=self.instance.pk)
        if others.exists():
            raise ValidationError(f"Cluster {self.cluster.name} already has a node named {name}.")
        return name

    def clean_address(self) -> str:
        return normalize_address(self.cleaned_data["address"])

    def clean_ignore_preflight_errors(self) -> list[str]:
        names = parse_check_list(self.cleaned_data.get("ignore_preflight_errors", ""))
        validate_ignore_preflight_errors(names)
        return names

    def clean_private_key(self) -> str:
        text = self.cleaned_data.get("private_key") or ""
        upload = self.files.get(self.add_prefix("private_key_file")) if self.files else None
        if upload is not None:
            if text.strip():
                raise ValidationError(
                    "A key was pasted and a key file uploaded: paste the key or upload its file, not both, "
                    "so there is no doubt which one Kubeboard stores."
                )
            if upload.size > 64 * 1024:
                raise ValidationError("The uploaded file is too large for an SSH private key (over 64 KiB).")
            try:
                text = upload.read().decode()
            except UnicodeDecodeError as exc:
                raise ValidationError("The uploaded file is not a text private key.") from exc
        return text.strip()

    def clean(self) -> dict:
        cleaned = super().clean()
        credential = cleaned.get("credential")
        kept = self.editing and self._stored_credential() == credential
        if credential == Node.Credential.PRIVATE_KEY:
            text = cleaned.get("private_key", "")
            if "private_key" in self.errors:
                pass  # already told what is wrong with it
            elif not text and not kept:
                self.add_error("private_key", "Paste or upload the private key Kubeboard should use.")
            elif text:
                try:
                    keys.load_new_private_key(text, cleaned.get("passphrase") or None)
                except keys.InvalidKey as exc:
                    self.add_error("passphrase" if "passphrase" in str(exc) else "private_key", str(exc))
        elif credential == Node.Credential.PASSWORD:
            if not cleaned.get("password") and not kept:
                self.add_error("password", "Enter the password for this user.")
        if self.editing and self.instance.is_joined:
            for field in ("address", "ssh_port"):
                if field in self.changed_data:
                    self.add_error(field, "A joined machine keeps its address and port.")
        self._check_machine_is_free(cleaned)
        return cleaned

    def _stored_credential(self) -> str | None:
        return Node.objects.filter(pk=self.instance.pk).values_list("credential", flat=True).first()

    def _check_machine_is_free(self, cleaned: dict) -> None:
        address, port = cleaned.get("address"), cleaned.get("ssh_port")
        if not address or not port:
            return
        other = (
            Node.objects.filter(address=address, ssh_port=port)
            .exclude(pk=self.instance.pk)
            .select_related("cluster")
            .first()
        )
        if other is None:
            return
        if other.cluster_id == self.cluster.pk:
            message = f"This machine ({address}:{port}) is already node {other.name} of this cluster."
        elif self.user is None or can(self.user, VIEW, other.cluster):
            message = (
                f"This machine ({address}:{port}) already belongs to cluster {other.cluster.name} "
                f"(node {other.name}); a machine can be part of only one cluster."
            )
        else:
            message = (
                f"This machine ({address}:{port}) is already registered in another cluster; "
                "a machine can be part of only one cluster."
            )
        self.add_error("address", message)

    def save(self, commit: bool = False) -> Node:
        """Fill the node (secrets only when given); the caller saves it through the service."""
        node = super().save(commit=False)
        node.ignore_preflight_errors = self.cleaned_data["ignore_preflight_errors"]
        if node.credential == Node.Credential.PRIVATE_KEY and self.cleaned_data.get("private_key"):
            node.ssh_private_key = self.cleaned_data["private_key"]
            node.ssh_key_passphrase = self.cleaned_data.get("passphrase") or ""
        if node.credential == Node.Credential.PASSWORD and self.cleaned_data.get("password"):
            node.ssh_password = self.cleaned_data["password"]
        return node

    @property
    def changed_fields(self) -> list[str]:
        """Names of what changed (for the audit record; values of secrets are never recorded)."""
        names = set(self.changed_data) - {"passphrase"}
        if "private_key_file" in names:
            names = (names - {"private_key_file"}) | {"private_key"}
        return sorted(names)

    def validate_unique(self) -> None:
        # Uniqueness is checked in clean_name and _check_machine_is_free, with messages that name
        # the other cluster only to someone who may see it; Django's generic message would repeat it.
        pass


class HostKeyForm(forms.Form):
    fingerprint = forms.CharField(max_length=100)


# A long list with a mistake on every line is shown up to here, then counted.
MAX_SHOWN_PROBLEMS = 50


class BulkNodeForm(forms.Form):
    """Add several machines at once (all or none): each row of the list goes through ``NodeForm``,
    the single Add machine's rules and messages, and every problem is reported with its line.
    The machines log in with the cluster's key pair: a secret never goes into a list."""

    machines = forms.CharField(
        label="Machines",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "autocomplete": "off"}),
        help_text="One address per line (the node is named after it), or CSV rows name,address,user,port,role; "
        "empty columns take the defaults below. A header row (name,address,…) lets the columns come in any order. "
        f"At most {machine_list.MAX_LINES} lines.",
    )
    machines_file = forms.FileField(label="…or upload a CSV file", required=False)
    ssh_user = forms.CharField(label="SSH user", initial="root", max_length=32, help_text="For rows without a user.")
    ssh_port = forms.IntegerField(
        label="SSH port", initial=22, min_value=1, max_value=65535, help_text="For rows without a port."
    )
    role = forms.ChoiceField(
        label="Role", choices=Node.Role.choices, initial=Node.Role.WORKER, help_text="For rows without a role."
    )

    def __init__(self, *args, cluster, user=None, **kwargs) -> None:
        kwargs.setdefault("prefix", "bulk")
        super().__init__(*args, **kwargs)
        self.cluster = cluster
        self.user = user
        self.nodes: list[Node] = []

    def clean_machines(self) -> str:
        text = self.cleaned_data.get("machines") or ""
        upload = self.files.get(self.add_prefix("machines_file")) if self.files else None
        if upload is None:
            return text
        if text.strip():
            raise ValidationError("A list was pasted and a file uploaded: paste the list or upload its file, not both.")
        if upload.size > machine_list.MAX_BYTES:
            raise ValidationError(f"The uploaded file is larger than {machine_list.MAX_BYTES // 1024} KiB.")
        try:
            return upload.read().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationError("The uploaded file is not UTF-8 text (save the spreadsheet as CSV UTF-8).") from exc

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:
            return cleaned  # the defaults or the upload are wrong: the rows would repeat it
        try:
            rows = machine_list.parse(cleaned["machines"])
        except machine_list.MachineListError as exc:
            self._report(exc.problems)
            return cleaned
        problems: list[tuple[int, str]] = []
        found: list[tuple[int, str, str, int]] = []
        for row in rows:
            form = NodeForm(self._node_data(row, cleaned), cluster=self.cluster, user=self.user)
            if form.is_valid():
                node = form.save()
                self.nodes.append(node)
                found.append((row.line, node.name, node.address, node.ssh_port))
                continue
            for field, errors in form.errors.items():
                label = form.fields[field].label if field in form.fields else ""
                for error in errors:
                    if field == "name" and row.name is None:
                        error = (
                            f"{row.address} cannot be a node name; give the row a name column (name,address). {error}"
                        )
                    problems.append((row.line, f"{row.text}: {label}: {error}" if label else f"{row.text}: {error}"))
        problems.extend(machine_list.duplicates(found))
        if problems:
            self.nodes = []
            self._report(sorted(problems))
        return cleaned

    def _node_data(self, row: machine_list.MachineRow, cleaned: dict) -> dict:
        return {
            "name": row.name if row.name is not None else normalize_address(row.address),
            "address": row.address,
            "ssh_port": row.port or cleaned["ssh_port"],
            "ssh_user": row.user or cleaned["ssh_user"],
            "role": row.role or cleaned["role"],
            "credential": Node.Credential.CLUSTER_KEY,
        }

    def _report(self, problems: list[tuple[int, str]]) -> None:
        shown = [machine_list.describe(line, message) for line, message in problems[:MAX_SHOWN_PROBLEMS]]
        if len(problems) > MAX_SHOWN_PROBLEMS:
            shown.append(f"…and {len(problems) - MAX_SHOWN_PROBLEMS} more problems. Nothing was added.")
        self.add_error("machines", shown)


class BulkCheckForm(forms.Form):
    """The machines of one cluster to check together."""

    nodes = BoundedModelMultipleChoiceField(
        queryset=Node.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose the machines to check."},
    )

    def __init__(self, *args, cluster, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["nodes"].queryset = cluster.nodes.all()


class BulkHostKeyForm(forms.Form):
    """Host keys to accept together: each ticked box carries the machine's name and the fingerprint
    shown next to it, which ``services.accept_host_key`` compares with what the machine offered."""

    accept = forms.Field(
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Tick the machines whose fingerprint you compared and want to accept."},
    )

    def __init__(self, *args, cluster, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cluster = cluster

    def clean_accept(self) -> list[tuple[Node, str]]:
        values = self.cleaned_data["accept"]
        if not isinstance(values, list) or len(values) > machine_list.MAX_LINES:
            raise ValidationError("Reload the page and tick the machines again.")
        wanted: list[tuple[str, str]] = []
        for value in values:
            name, _, fingerprint = str(value).partition(" ")
            if not fingerprint:
                raise ValidationError("Reload the page and tick the machines again.")
            wanted.append((name, fingerprint))
        nodes = {node.name: node for node in self.cluster.nodes.filter(name__in=[name for name, _ in wanted])}
        missing = sorted({name for name, _ in wanted} - set(nodes))
        if missing:
            raise ValidationError(
                f"{', '.join(missing)} is no longer a machine of {self.cluster.name}; reload the page."
            )
        return [(nodes[name], fingerprint) for name, fingerprint in wanted]
