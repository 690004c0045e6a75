# Adopted clusters: reached through an uploaded admin kubeconfig (encrypted at rest).

import core.encryption
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('clusters', '0002_labels'),
    ]

    operations = [
        migrations.AddField(
            model_name='cluster',
            name='origin',
            field=models.CharField(choices=[('created', 'Created by Kubeboard'), ('adopted', 'Adopted (admin kubeconfig)')], default='created', max_length=16),
        ),
        migrations.AddField(
            model_name='cluster',
            name='admin_kubeconfig',
            field=core.encryption.EncryptedTextField(blank=True, editable=False),
        ),
    ]
