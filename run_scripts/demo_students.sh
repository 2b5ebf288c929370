# Sourced by demo.sh and demo_report.sh (no set-up side effects): the demo's distilled students.
# student_label ALGO: prints the table label of STUDENT_ALGO's student, or a one-line error (status 2).
student_label() {
    case "$1" in
        tinybert) echo "TinyBERT student (3 layers)" ;;
        kd) echo "KD student (3 layers)" ;;
        pkd) echo "PKD student (3 layers)" ;;
        theseus) echo "Theseus student (3 layers)" ;;
        *) echo "error: STUDENT_ALGO=$1: expected tinybert, kd, pkd or theseus" >&2; return 2 ;;
    esac
}
