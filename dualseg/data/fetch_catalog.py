"""The public datasets ``dualseg fetch-data`` knows: where each comes from, its checksums, licence and layout.

The catalogue is data only; :mod:`dualseg.data.fetch` is the engine. Every checksum names where it was published
(``checksum_source``); none was computed here (this machine has no internet). A resource without a checksum is
downloaded only with ``--allow-unverified``, after its SHA-256 is printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Resource:
    """One file to download: an archive (zip/tar, extracted) or a plain file (kept as it is)."""

    url: str
    filename: str
    sha256: str | None = None
    md5: str | None = None
    checksum_source: str = ""
    optional: bool = False  # a missing optional file (``--from``) does not stop the conversion

    @property
    def verified(self) -> bool:
        return bool(self.sha256 or self.md5)


@dataclass(frozen=True)
class CatalogEntry:
    """A dataset: its sources, terms and how the source layout becomes dualseg's ``images/`` + ``masks/``.

    Attributes:
        name: the ``fetch-data`` name (also the dataset description checked afterwards, see ``description``).
        title: human-readable name with the reference to cite.
        homepage: the official page.
        licence: the terms as far as known.
        size: approximate download size.
        resources: the files a download fetches; empty when no direct download is known.
        registration: ``None`` for an open download; otherwise where and how to get the files by hand
            (they are then converted with ``--from``).
        converter: the conversion in :mod:`dualseg.data.fetch` (``CONVERTERS``).
        conversion: what the conversion does (shown by ``--list`` and in docs/datasets.md).
        description: the dataset description ``check-data`` uses on the result.
    """

    name: str
    title: str
    homepage: str
    licence: str
    size: str
    converter: str
    conversion: str
    description: str
    resources: tuple[Resource, ...] = ()
    registration: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def checksum_status(self) -> str:
        if not self.resources:
            return "n/a (manual)"
        kinds = {"sha256" if r.sha256 else "md5" if r.md5 else "none" for r in self.resources}
        return "+".join(sorted(kinds))


_ISBI_BASE = "http://brainiac2.mit.edu/isbi_challenge/sites/default/files/"
# MD5s of the three challenge stacks as pinned by the ssTEM dataset class proposed for torchvision
# (torchvision/datasets/sstem.py in a torchvision fork, "Dataset for ISBI Challenge: Segmentation of neuronal
# structures in EM stacks", meta['train'|'test'][...]['md5']).
_ISBI_MD5_SOURCE = "torchvision fork, datasets/sstem.py (ssTEM meta md5)"

CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in (
        CatalogEntry(
            name="isbi2012",
            title="ISBI 2012 EM segmentation challenge, training stack (Arganda-Carreras et al. 2015)",
            homepage="http://brainiac2.mit.edu/isbi_challenge/",
            licence="public for research; cite Arganda-Carreras et al. 2015 and Cardona et al. 2010",
            size="~15 MB",
            converter="isbi2012",
            description="isbi2012",
            resources=(
                Resource(_ISBI_BASE + "train-volume.tif", "train-volume.tif",
                         md5="465461edbe0254630c4ec5577f1e7764", checksum_source=_ISBI_MD5_SOURCE),
                Resource(_ISBI_BASE + "train-labels.tif", "train-labels.tif",
                         md5="657fe6b728c6dd0152e295c6d800001d", checksum_source=_ISBI_MD5_SOURCE),
                Resource(_ISBI_BASE + "test-volume.tif", "test-volume.tif",
                         md5="9767660d7abe4e0ecbdd0061a16058ad", checksum_source=_ISBI_MD5_SOURCE, optional=True),
            ),
            conversion="multipage TIFF stacks (30 x 512 x 512) -> one PNG per slice: images/N.png, masks/N.png "
            "(N = 0..29, 0/255, 255 = cell interior), test-volume.tif -> test_images_unlabeled/N.png. The original "
            "host may be offline: pass a mirror with --url FILE=URL (the MD5s are still checked) or the files "
            "with --from.",
        ),
        CatalogEntry(
            name="drive",
            title="DRIVE retinal vessels (Staal et al., IEEE TMI 2004)",
            homepage="https://drive.grand-challenge.org/",
            licence="free for research after registration; cite Staal et al. 2004",
            size="~30 MB",
            converter="drive",
            description="drive",
            registration="register at https://drive.grand-challenge.org/ and download the data (DRIVE.zip, or "
            "training.zip and test.zip); then run: dualseg fetch-data drive --from DRIVE.zip --dest DIR "
            "(archives or extracted folders with training/ and test/ holding images/, 1st_manual/, mask/)",
            conversion="training/ and test/ folders merged: images/<id>.tif unchanged (<id> = 21_training, "
            "01_test, ...); 1st_manual/*_manual1.gif -> masks/<id>.png (0/255); mask/*_mask.gif -> "
            "fov_masks/<id>.png (0/255); 2nd_manual -> masks_2nd_observer/<id>.png; test images without a "
            "manual segmentation (grand-challenge release) -> test_images_unlabeled/.",
        ),
        CatalogEntry(
            name="cvc_clinicdb",
            title="CVC-ClinicDB colonoscopy polyps (Bernal et al., CMIG 2015)",
            homepage="https://polyp.grand-challenge.org/CVCClinicDB/",
            licence="research use; cite Bernal et al. 2015 (no open licence)",
            size="~60 MB",
            converter="cvc_clinicdb",
            description="cvc_clinicdb",
            registration="no direct archive with a published checksum is known (the official link on "
            "https://polyp.grand-challenge.org/CVCClinicDB/ serves a RAR archive); download and unpack it, then "
            "run: dualseg fetch-data cvc_clinicdb --from CVC-ClinicDB/ --dest DIR",
            conversion="'Original/' + 'Ground Truth/' (or 'images/' + 'masks/', TIFF or PNG) -> images/N.png "
            "(lossless; 3-sample TIFFs tagged BlackIsZero are read with tifffile) and masks/N.png binarised at "
            ">= 128 to 0/255. Folders whose roles are swapped (1-channel files in the image folder, RGB files in "
            "the mask folder, as in some mirrors) are detected per pair and swapped back.",
        ),
        CatalogEntry(
            name="kvasir_seg",
            title="Kvasir-SEG polyps (Jha et al., MMM 2020)",
            homepage="https://datasets.simula.no/kvasir-seg/",
            licence="research and education only; commercial use forbidden without permission; cite Jha et al. "
            "2020",
            size="~46 MB",
            converter="kvasir_seg",
            description="kvasir_seg",
            aliases=("kvasir",),
            resources=(
                Resource("https://datasets.simula.no/downloads/kvasir-seg.zip", "kvasir-seg.zip",
                         sha256="03b30e21d584e04facf49397a2576738fd626815771afbbf788f74a7153478f7",
                         checksum_source="constantinpape/torch-em, torch_em/data/datasets/medical/kvasir.py"),
            ),
            conversion="Kvasir-SEG/images/*.jpg copied unchanged; Kvasir-SEG/masks/*.jpg (JPEG, compression noise "
            "around 0 and 255) -> masks/<id>.png, grey mean >= 128 -> 255, else 0.",
        ),
        CatalogEntry(
            name="dsb2018",
            title="2018 Data Science Bowl nuclei, stage-1 training set with hand-corrected masks "
            "(Caicedo et al., Nature Methods 2019)",
            homepage="https://bbbc.broadinstitute.org/BBBC038",
            licence="BBBC038 is reported CC0 (verify); cite Caicedo et al. 2019",
            size="~80 MB",
            converter="dsb2018",
            description="dsb2018",
            resources=(
                Resource("https://github.com/ibmua/data-science-bowl-2018-train-set/raw/master/train-hand.zip",
                         "train-hand.zip",
                         sha256="d218b8706cd7b9a2d7171268a6e99c7b0e94605af46521ff2ffd5a17708b1af6",
                         checksum_source="constantinpape/torch-em, torch_em/data/datasets/light_microscopy/dsb.py "
                         "(the hand-corrected stage1_train set recommended on the BBBC038 page)"),
            ),
            conversion="<id>/images/<id>.png copied unchanged (RGBA kept; alpha is dropped when read); the "
            "per-nucleus <id>/masks/*.png -> masks/<id>.png (union, 0/255) and instance_masks/<id>.png (16-bit, "
            "1..K in file-name order). Note: the shared ../shared/data/dsb2018 holds the 65 stage-1 *test* images "
            "instead.",
        ),
        CatalogEntry(
            name="acdc",
            title="ACDC cardiac cine-MRI (Bernard et al., IEEE TMI 2018)",
            homepage="https://humanheart-project.creatis.insa-lyon.fr/database/#collection/637218c173e9f0047faa00fb",
            licence="non-commercial scientific research only; cite Bernard et al. 2018",
            size="~2.3 GB",
            converter="acdc",
            description="acdc",
            resources=(
                Resource("https://humanheart-project.creatis.insa-lyon.fr/database/api/v1/collection/"
                         "637218c173e9f0047faa00fb/download", "ACDC.zip",
                         sha256="2787e08b0d3525cbac710fc3bdf69ee7c5fd7446472e49db8bc78548802f6b5e",
                         checksum_source="constantinpape/torch-em, torch_em/data/datasets/medical/acdc.py"),
            ),
            conversion="database/{training,testing}/patientNNN/patientNNN_frameMM.nii.gz with its _gt -> 2D "
            "slices: images/patientNNN_frameMM_slice_K.png (K = 1.., 16-bit = round(v * 65535) of the volume "
            "min-max normalised to [0, 1], as in the SSL4MIS preprocessing), masks/...png (0 bg, 1 RV, 2 Myo, "
            "3 LV); split.csv: training patients 'train', testing patients 'test' (held out). If the portal asks "
            "for a login, download ACDC.zip in a browser and pass it with --from.",
        ),
    )
}


def catalog_names() -> list[str]:
    return sorted(CATALOG)


def find_entry(name: str) -> CatalogEntry | None:
    """The entry by name or alias (case-insensitive, '-' and '_' alike), or None."""
    key = name.lower().replace("-", "_")
    for entry in CATALOG.values():
        if key == entry.name or key in entry.aliases:
            return entry
    return None
