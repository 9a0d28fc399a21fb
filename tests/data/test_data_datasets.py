"""The known datasets: one module each under dualseg.data.datasets, holding its description, catalogue entry and
converter; and the name tables they register in."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import dualseg.data.datasets as datasets_package
from dualseg.data import conversion, descriptions, fetch_catalog
from dualseg.data.conversion import CONVERTERS
from dualseg.data.descriptions import list_descriptions
from dualseg.data.fetch_catalog import CATALOG, CatalogEntry, get_entry
from dualseg.data.names import NameTable
from dualseg.errors import DualsegError

DATASET_MODULES = sorted(m.name for m in pkgutil.iter_modules(datasets_package.__path__))


def test_every_registered_dataset_has_a_module_and_every_module_is_imported():
    assert DATASET_MODULES == ["acdc", "cvc_clinicdb", "drive", "dsb2018", "isbi2012", "kvasir_seg"]
    assert list_descriptions() == sorted(CATALOG) == sorted(CONVERTERS) == DATASET_MODULES


@pytest.mark.parametrize("name", DATASET_MODULES)
def test_each_module_registers_its_description_entry_and_converter(name, monkeypatch):
    """Re-run the module against empty tables: it alone must fill each one with its own name."""
    tables = {
        (descriptions, "_DESCRIPTIONS"): NameTable("dataset description"),
        (fetch_catalog, "CATALOG"): NameTable("dataset"),
        (conversion, "CONVERTERS"): NameTable("converter"),
    }
    for (module, attribute), table in tables.items():
        monkeypatch.setattr(module, attribute, table)
    dataset = importlib.reload(importlib.import_module(f"dualseg.data.datasets.{name}"))
    assert name == dataset.NAME
    for table in tables.values():
        assert list(table) == [name], f"datasets/{name}.py does not register its {table.kind}"
    entry = fetch_catalog.CATALOG[name]
    assert (entry.converter, entry.description) == (name, name)
    assert entry.resources or entry.registration


def test_entry_converter_and_description_default_to_its_name():
    entry = CatalogEntry(name="toy", title="t", homepage="", licence="", size="", conversion="")
    assert (entry.converter, entry.description) == ("toy", "toy")
    named = CatalogEntry(name="toy", title="t", homepage="", licence="", size="", conversion="", converter="drive",
                         description="isbi2012")
    assert (named.converter, named.description) == ("drive", "isbi2012")


def test_catalogue_lookup_by_alias_and_unknown_names():
    assert get_entry("Kvasir") is CATALOG["kvasir_seg"] and get_entry("cvc-clinicdb") is CATALOG["cvc_clinicdb"]
    with pytest.raises(DualsegError, match=r"unknown dataset 'ISBI2021' \(did you mean 'isbi2012'\?\); "
                                           r"'dualseg fetch-data --list' shows the known ones \(acdc, "):
        get_entry("ISBI2021")


def test_name_table_pick():
    table: NameTable[int] = NameTable("colour", "choose one of {known}")
    assert table.register("red", 1) == 1 and table.pick("red") == 1
    table.register("green", 2)
    with pytest.raises(DualsegError) as caught:
        table.pick("gren")
    assert str(caught.value) == "unknown colour 'gren' (did you mean 'green'?); choose one of green, red"
