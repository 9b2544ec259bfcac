package io.statesrv.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class FramesTest {
    @Test
    void framesSplitAcrossFeedsComeOutWhole() throws Exception {
        byte[] a = Frames.frame(new byte[] {1, 2, 3});
        byte[] b = Frames.frame(new byte[0]);
        byte[] c = Frames.frame(new byte[100_000]);
        byte[] all = new byte[a.length + b.length + c.length];
        System.arraycopy(a, 0, all, 0, a.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        System.arraycopy(c, 0, all, a.length + b.length, c.length);
        Frames.Decoder d = new Frames.Decoder(1 << 20);
        int taken = 0;
        int sizes = 0;
        // One byte at a time through the first frames, then the rest in odd chunks.
        for (int off = 0; off < all.length; ) {
            int n = off < 16 ? 1 : Math.min(7777, all.length - off);
            d.feed(all, off, n);
            off += n;
            byte[] f;
            while ((f = d.next()) != null) {
                taken++;
                sizes += f.length;
            }
        }
        assertThat(taken).isEqualTo(3);
        assertThat(sizes).isEqualTo(100_003);
        assertThat(d.next()).isNull();
    }

    @Test
    void anAnnouncedLengthOverTheLimitIsRefusedBeforeItsBytesArrive() {
        Frames.Decoder d = new Frames.Decoder(1000);
        d.feed(new byte[] {0, 0, 3, (byte) 0xe9}, 0, 4); // 1001
        assertThatThrownBy(d::next)
                .isInstanceOf(Frames.FrameTooLargeException.class)
                .hasMessageContaining("1001");
    }

    @Test
    void requestFrameIdsUseVarints() {
        byte[] op = {0x1a, 0x00}; // ping
        assertThat(Frames.requestFrame(1, op)).containsExactly(0, 0, 0, 4, 0x08, 1, 0x1a, 0);
        assertThat(Frames.requestFrame(300, op))
                .containsExactly(0, 0, 0, 5, 0x08, 0xac - 256, 0x02, 0x1a, 0);
    }
}
