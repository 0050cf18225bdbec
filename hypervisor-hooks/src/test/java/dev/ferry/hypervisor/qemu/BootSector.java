package dev.ferry.hypervisor.qemu;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The smallest guest that boots from a disk through the firmware: a 512-byte MBR boot sector,
 * assembled by hand below, that SeaBIOS loads at 0000:7c00 and that writes
 * {@code "ferry disk boot line NNNN"} to COM1 (port 0x3f8) in a loop, NNNN a hexadecimal counter
 * in a register, with a busy-wait between lines (a few lines a second under TCG). The counter is
 * CPU state: after a live migration the destination goes on from where the source was instead of
 * starting at 0000.
 *
 * <p>Re-check the bytes with binutils: {@code as --32} of the assembly in the comments (with
 * {@code .code16}), then {@code ld -m elf_i386 -Ttext 0 --oformat binary}.
 */
public final class BootSector {
    /** What each line starts with. */
    public static final String TEXT = "ferry disk boot line ";

    private static final int[] CODE = {
        0xfa, // cli
        0x31, 0xc0, // xor ax, ax
        0x8e, 0xd8, // mov ds, ax
        0x8e, 0xd0, // mov ss, ax
        0xbc, 0x00, 0x7c, // mov sp, 0x7c00
        0x31, 0xdb, // xor bx, bx            ; bx: the line counter
        0xba, 0xf8, 0x03, // line: mov dx, 0x3f8   ; COM1's data register
        0xbe, 0x42, 0x7c, // mov si, 0x7c42        ; the text below
        0xac, // text: lodsb
        0x84, 0xc0, // test al, al
        0x74, 0x03, // jz number
        0xee, // out dx, al
        0xeb, 0xf8, // jmp text
        0x89, 0xd8, // number: mov ax, bx
        0xb9, 0x04, 0x00, // mov cx, 4
        0xc1, 0xc0, 0x04, // digit: rol ax, 4
        0x50, // push ax
        0x24, 0x0f, // and al, 0x0f
        0x04, 0x30, // add al, '0'
        0x3c, 0x39, // cmp al, '9'
        0x76, 0x02, // jbe put
        0x04, 0x07, // add al, 7             ; 'A'..'F'
        0xee, // put: out dx, al
        0x58, // pop ax
        0xe2, 0xee, // loop digit
        0xb0, 0x0a, // mov al, 10
        0xee, // out dx, al
        0x43, // inc bx
        0xb9, 0x00, 0x08, // mov cx, 0x800         ; delay: 0x800 x 0x10000 loop iterations
        0x51, // outer: push cx
        0x31, 0xc9, // xor cx, cx
        0xe2, 0xfe, // inner: loop inner
        0x59, // pop cx
        0xe2, 0xf8, // loop outer
        0xeb, 0xca, // jmp line
    };

    private BootSector() {}

    /** The 512-byte sector: code, the text at offset 0x42, the 0x55 0xaa signature. */
    public static byte[] sector() {
        byte[] s = new byte[512];
        for (int i = 0; i < CODE.length; i++) {
            s[i] = (byte) CODE[i];
        }
        byte[] text = TEXT.getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(text, 0, s, 0x42, text.length); // NUL-terminated by the zeros after it
        s[510] = 0x55;
        s[511] = (byte) 0xaa;
        return s;
    }

    /**
     * A raw disk image of 1 MiB with the sector first: SeaBIOS does not boot a virtio disk of one
     * sector, and O_DIRECT ({@code cache=none}) wants whole blocks.
     */
    public static Path writeImage(Path file) throws IOException {
        byte[] image = new byte[1 << 20];
        System.arraycopy(sector(), 0, image, 0, 512);
        return Files.write(file, image);
    }

    /** The highest counter on a console, or -1 when no line is complete yet. */
    public static int lastLine(String console) {
        int last = -1;
        for (String line : console.split("\n")) {
            int at = line.indexOf(TEXT);
            String n = at < 0 ? "" : line.substring(at + TEXT.length()).strip();
            if (n.length() == 4) {
                try {
                    last = Math.max(last, Integer.parseInt(n, 16));
                } catch (NumberFormatException partial) {
                    // a line cut short by the end of the file
                }
            }
        }
        return last;
    }
}
