/*
 * postprocess/dcm_util.cc — helpers shared by the DCMTK adapters; see dcm_util.h.
 */
#include "postprocess/dcm_util.h"

#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/oflog/oflog.h>
#include <mutex>

extern "C" {
#include "common/error.h"
#include "common/fileio.h"
#include "postprocess/uid.h"
}

void pnx_dcm_quiet_writer_logs(void)
{
    static std::once_flag once;
    std::call_once(once, [] {
        for (const char *name : {"dcmtk.dcmseg", "dcmtk.dcmiod", "dcmtk.dcmfg"})
            OFLog::getLogger(name).setLogLevel(OFLogger::ERROR_LOG_LEVEL);
    });
}

int pnx_dcm_fail(int code, const OFCondition &cond, const char *what)
{
    return pnx_fail(code, "%s: %s", what, cond.text());
}

int pnx_dcm_save_atomic(const char *path, DcmFileFormat &ff)
{
    const E_TransferSyntax xfer = EXS_LittleEndianExplicit;
    pnx_atomic_file af;
    std::memset(&af, 0, sizeof af);
    int rc = pnx_atomic_open(&af, path);
    if (rc)
        return rc;
    /* DCMTK streams into this buffer and hands it back whenever it fills. */
    std::vector<Uint8> buffer(256 * 1024);
    DcmOutputBufferStream out(buffer.data(), (offile_off_t)buffer.size());
    OFCondition cond;
    ff.transferInit();
    for (;;) {
        cond = ff.write(out, xfer, EET_ExplicitLength, NULL, EGL_recalcGL, EPD_noChange, 0, 0, 0,
                        EWM_createNewMeta);
        if (cond.good())
            out.flush();
        void *chunk = NULL;
        offile_off_t len = 0;
        out.flushBuffer(chunk, len);
        if (len > 0 && std::fwrite(chunk, 1, (size_t)len, af.fp) != (size_t)len) {
            ff.transferEnd();
            pnx_atomic_abort(&af);
            return pnx_fail(PNX_EIO, "write %s: short write", path);
        }
        if (cond != EC_StreamNotifyClient)
            break;
    }
    ff.transferEnd();
    if (cond.bad()) {
        pnx_atomic_abort(&af);
        return pnx_dcm_fail(PNX_EIO, cond, path);
    }
    if (!out.isFlushed()) {
        pnx_atomic_abort(&af);
        return pnx_fail(PNX_EINTERNAL, "write %s: DICOM stream not fully flushed", path);
    }
    return pnx_atomic_commit(&af);
}

static int put_string(DcmItem &item, const DcmTagKey &tag, const char *value)
{
    /* No value check: the source's values are carried as they are. */
    OFCondition cond = item.putAndInsertString(tag, value, OFFalse);
    if (cond.bad())
        return pnx_dcm_fail(PNX_EFORMAT, cond, DcmTag(tag).getTagName());
    return 0;
}

int pnx_dcm_put_patient_study(DcmItem &item, const pnx_dicom_source *src)
{
    struct {
        const DcmTagKey tag;
        const char *value;
        int omit_when_empty;
    } fields[] = {
        {DCM_SpecificCharacterSet, src->specific_character_set, 1},
        {DCM_PatientName, src->patient_name, 0},
        {DCM_PatientID, src->patient_id, 0},
        {DCM_PatientBirthDate, src->patient_birth_date, 0},
        {DCM_PatientSex, src->patient_sex, 0},
        {DCM_StudyInstanceUID, src->study_instance_uid, 0},
        {DCM_StudyDate, src->study_date, 0},
        {DCM_StudyTime, src->study_time, 0},
        {DCM_ReferringPhysicianName, src->referring_physician_name, 0},
        {DCM_StudyID, src->study_id, 0},
        {DCM_AccessionNumber, src->accession_number, 0},
        {DCM_StudyDescription, src->study_description, 1},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (fields[i].omit_when_empty && fields[i].value[0] == '\0')
            continue;
        int rc = put_string(item, fields[i].tag, fields[i].value);
        if (rc)
            return rc;
    }
    return 0;
}

static int all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int pnx_dcm_datetime(const char *datetime, OFString &date, OFString &time)
{
    char buf[15];
    if (datetime) {
        if (std::strlen(datetime) != 14 || !all_digits(datetime, 14))
            return pnx_fail(PNX_EINVAL, "content date-time \"%s\" is not YYYYMMDDHHMMSS", datetime);
        std::memcpy(buf, datetime, sizeof buf);
    } else {
        std::time_t now = std::time(NULL);
        std::tm local;
        if (!localtime_r(&now, &local) || std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S", &local) != 14)
            return pnx_fail(PNX_EINTERNAL, "cannot format the current time");
    }
    date.assign(buf, 8);
    time.assign(buf + 8, 6);
    return 0;
}

extern "C" int pnx_uid_random(char out[PNX_UID_BUF])
{
    if (!out)
        return pnx_fail(PNX_EINVAL, "random UID: no output");
    try {
        char uid[100];
        if (!dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT) ||
            std::strlen(uid) >= PNX_UID_BUF)
            return pnx_fail(PNX_EINTERNAL, "DCMTK could not generate a UID");
        std::memcpy(out, uid, std::strlen(uid) + 1);
        return 0;
    } catch (...) {
        return pnx_fail(PNX_EINTERNAL, "DCMTK threw while generating a UID");
    }
}
