import pickle

from theradose.errors import DicomTagError, InputError, UnknownNuclideError


def test_message_is_one_line_with_file_and_field():
    e = DicomTagError("required attribute is missing\n  or empty", file="a/b.dcm",
                      field="PatientWeight")
    assert str(e) == "a/b.dcm: PatientWeight: required attribute is missing or empty"
    assert isinstance(e, ValueError) and isinstance(e, InputError)


def test_keyerror_subclass_is_not_quoted_and_pickles():
    e = UnknownNuclideError("unknown nuclide 'Lu-178x'", field="nuclide")
    assert str(e) == "nuclide: unknown nuclide 'Lu-178x'"
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is UnknownNuclideError and str(back) == str(e) and back.field == "nuclide"
