"""Remote execution over SSH, with no models and no Django app below it.

``remote.ssh`` is the transport (connections, host-key pinning, process groups, SFTP),
``remote.keys`` reads SSH keys and writes fingerprints as ``ssh-keygen -l`` does. The app that
owns a machine builds the connection's ``remote.ssh.Target`` from its database rows
(``nodes.connect``), so nothing here reads or writes a table.
"""
