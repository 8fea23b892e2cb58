"""Webhook signing secrets kept sealed (`webhooks.signing.seal`) instead of in plain text."""

from django.db import migrations, models

from webhooks.signing import seal, unseal


def seal_secrets(apps, schema_editor):
    endpoints = apps.get_model("webhooks", "WebhookEndpoint")
    for endpoint in endpoints.objects.only("id", "secret"):
        endpoints.objects.filter(id=endpoint.id).update(sealed_secret=seal(endpoint.secret))


def unseal_secrets(apps, schema_editor):
    endpoints = apps.get_model("webhooks", "WebhookEndpoint")
    for endpoint in endpoints.objects.only("id", "sealed_secret"):
        endpoints.objects.filter(id=endpoint.id).update(secret=unseal(endpoint.sealed_secret))


class Migration(migrations.Migration):
    dependencies = [("webhooks", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="webhookendpoint",
            name="sealed_secret",
            field=models.TextField(default="", editable=False),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="webhookendpoint",
            name="secret",
            field=models.CharField(default="", editable=False, max_length=100),
        ),
        migrations.RunPython(seal_secrets, unseal_secrets),
        migrations.RemoveField(model_name="webhookendpoint", name="secret"),
    ]
